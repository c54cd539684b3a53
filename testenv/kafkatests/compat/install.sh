#!/usr/bin/env bash
# Installs the clients of the Kafka compatibility matrix (testenv/kafkatests/compat_test.go)
# from the package registries, each only when it is missing, so a second run
# takes well under a second:
#   - kcat 1.7.1 (librdkafka 2.0.2) and kafka-python 2.0.2 from Debian's packages
#     (run with /usr/bin/python3, whose dist-packages Debian's python3-kafka uses);
#   - kafkajs 2.2.4 from npm into $STRATA_CACHE/npm (default ~/.cache/strata/npm).
# The Go clients (franz-go, sarama, kafka-go) come from go.mod.
set -euo pipefail

KAFKAJS_VERSION=2.2.4
cache=${STRATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}
npm_prefix=$cache/npm

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
/usr/bin/python3 -c 'import kafka' >/dev/null 2>&1 || need_apt+=(python3-kafka)
if ((${#need_apt[@]})); then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
	echo "compat: installing ${need_apt[*]} (apt)" >&2
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

installed=$(node -p "try { require('$npm_prefix/node_modules/kafkajs/package.json').version } catch (e) { '' }" 2>/dev/null || true)
if [ "$installed" != "$KAFKAJS_VERSION" ]; then
	command -v npm >/dev/null 2>&1 || { echo "compat: npm is missing (Debian's nodejs and npm packages)" >&2; exit 1; }
	echo "compat: installing kafkajs@$KAFKAJS_VERSION (npm) into $npm_prefix" >&2
	mkdir -p "$npm_prefix"
	npm install --prefix "$npm_prefix" --no-audit --no-fund --loglevel=error "kafkajs@$KAFKAJS_VERSION" >&2
fi
