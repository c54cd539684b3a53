{{/* The prefix of every object's name: <release>-strata, or the release's
name alone when it already says strata. At most 52 characters, so that pod
names (a StatefulSet adds a hash label of its own) stay within limits. */}}
{{- define "strata.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The headless Service that gives each broker pod its DNS name. */}}
{{- define "strata.headless" -}}
{{- printf "%s-headless" (include "strata.fullname" .) -}}
{{- end -}}

{{- define "strata.secretName" -}}
{{- default (include "strata.fullname" .) .Values.secret.existingSecret -}}
{{- end -}}

{{/* Labels that select the broker pods; never change them on an upgrade
(a StatefulSet's selector is immutable). */}}
{{- define "strata.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "strata.labels" -}}
{{ include "strata.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
