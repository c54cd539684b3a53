package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/strata-broker/strata/testenv"
)

// previewRow returns the preview table's row of a partition (or TOTAL) and
// tier, split into its columns.
func previewRow(t *testing.T, out, partition, tier string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == partition && (f[2] == tier || f[1] == tier) {
			return f
		}
	}
	t.Fatalf("no row for %s %s in:\n%s", partition, tier, out)
	return nil
}

// The retention and record-deletion commands, and the errors of `topics
// alter` for bad configs, against one broker.
func TestRetentionCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	// Small segments, for the preview: a client may set segment.bytes
	// below 1 MiB only where the broker allows it.
	bs := "--bootstrap-server=" + testenv.StartInProcess(t, map[string]string{"log.segment.min.bytes": "1024"})

	t.Run("alter refuses bad configs", func(t *testing.T) {
		mustStrata(t, "", "topics", "create", "altered", "--config", "retention.ms=3600000", bs)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--config", "retention.ms=abc"}, `invalid value "abc" for retention.ms: must be an integer (milliseconds, -1 for unlimited)`},
			{[]string{"--config", "retention.msx=1"}, `unknown topic config "retention.msx" (did you mean retention.ms?)`},
			{[]string{"--config", "log.retention.hours=1"}, `unknown topic config "log.retention.hours" (did you mean retention.ms?)`},
			{[]string{"--delete-config", "no.such.key"}, `cannot delete unknown topic config "no.such.key"`},
			{[]string{"--config", "retention.ms"}, `--config "retention.ms": want key=value`},
		} {
			code, out, errOut := strata(t, "", append([]string{"topics", "alter", "altered", bs}, tc.args...)...)
			if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "strata: ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("alter %v: exit %d, stdout %q, stderr %q; want one line saying %s", tc.args, code, out, errOut, tc.want)
			}
		}
		// Nothing changed, and describe --configs still shows it.
		desc := mustStrata(t, "", "topics", "describe", "altered", "--configs", bs)
		if !strings.Contains(desc, "Configs: retention.ms=3600000\n") || !strings.Contains(desc, "  retention.ms=3600000\tsource=topic\n") {
			t.Errorf("describe after refused alters:\n%s", desc)
		}
	})

	t.Run("preview", func(t *testing.T) {
		mustStrata(t, "", "topics", "create", "previewed", "--partitions", "2", "--config", "segment.bytes=1024", bs)
		var lines strings.Builder
		for i := range 60 {
			fmt.Fprintf(&lines, "record-%03d-%s\n", i, strings.Repeat("x", 50))
		}
		mustStrata(t, lines.String(), "produce", "previewed", "--partition", "0", bs)

		var status []tieringJSON
		if err := json.Unmarshal([]byte(mustStrata(t, "", "tiering", "status", "previewed", "-o", "json", bs)), &status); err != nil {
			t.Fatal(err)
		}
		if len(status) != 2 || status[0].LocalEnd != 60 || status[0].LocalBytes < 60*50 {
			t.Fatalf("status before the preview: %+v", status)
		}
		localBytes := fmt.Sprint(status[0].LocalBytes)

		// retention.bytes=0: every record below the high watermark.
		out := mustStrata(t, "", "retention", "preview", "previewed", "--config", "retention.bytes=0", bs)
		if !strings.HasPrefix(out, "Retention preview for topic previewed (nothing is deleted):\n") ||
			!strings.Contains(out, "  retention.bytes=0\tsource=topic\n") || !strings.Contains(out, "  retention.ms=604800000\tsource=default\n") {
			t.Errorf("preview header:\n%s", out)
		}
		row := previewRow(t, out, "0", "local")
		if len(row) != 8 || row[1] != "1" || row[4] != localBytes || row[5] != "60" || row[6] != "0" || row[7] != "60" {
			t.Errorf("partition 0 row %q, want %s bytes, 60 offsets, 0 -> 60:\n%s", row, localBytes, out)
		}
		if row := previewRow(t, out, "1", "local"); row[3] != "0" || row[4] != "0" || row[5] != "0" || row[6] != "0" || row[7] != "0" {
			t.Errorf("empty partition 1 row %q:\n%s", row, out)
		}
		total := previewRow(t, out, "TOTAL", "local")
		if len(total) != 5 || total[2] != row[3] || total[3] != localBytes || total[4] != "60" {
			t.Errorf("TOTAL row %q, want the partitions' sums:\n%s", total, out)
		}
		if strings.Contains(out, "remote") || strings.Contains(out, "Nothing would be deleted") {
			t.Errorf("preview of a topic without remote storage:\n%s", out)
		}

		var pj retentionPreviewJSON
		if err := json.Unmarshal([]byte(mustStrata(t, "", "retention", "preview", "previewed", "--config", "retention.bytes=0", "-o", "json", bs)), &pj); err != nil {
			t.Fatal(err)
		}
		if len(pj.Partitions) != 2 || pj.Configs["retention.bytes"] != "0" || pj.Totals["local"].Offsets != 60 ||
			fmt.Sprint(pj.Totals["local"].Bytes) != localBytes || pj.Partitions[0].Local.NewStartOffset != 60 || pj.Partitions[0].Remote != nil {
			t.Errorf("preview json: %+v", pj)
		}

		// The current configs (7 days, unlimited bytes) delete nothing, nor
		// does a compact topic.
		if out := mustStrata(t, "", "retention", "preview", "previewed", bs); !strings.HasSuffix(out, "Nothing would be deleted.\n") {
			t.Errorf("preview of the current configs:\n%s", out)
		}
		if out := mustStrata(t, "", "retention", "preview", "previewed", "--config", "retention.bytes=0", "--config", "cleanup.policy=compact", bs); !strings.HasSuffix(out, "Nothing would be deleted.\n") {
			t.Errorf("preview of a compact topic:\n%s", out)
		}

		code, _, errOut := strata(t, "", "retention", "preview", "previewed", "--config", "retention.ms=abc", bs)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `invalid value "abc" for retention.ms`) {
			t.Errorf("preview of an ill-typed value: exit %d, %q", code, errOut)
		}
		code, _, errOut = strata(t, "", "retention", "preview", "previewed", "--config", "retention.msx=5", bs)
		if code != 1 || !strings.Contains(errOut, `unknown topic config "retention.msx" (did you mean retention.ms?)`) {
			t.Errorf("preview of an unknown key: exit %d, %q", code, errOut)
		}

		// Nothing was deleted, nor altered.
		if err := json.Unmarshal([]byte(mustStrata(t, "", "tiering", "status", "previewed", "-o", "json", bs)), &status); err != nil {
			t.Fatal(err)
		}
		if status[0].LocalStart != 0 || fmt.Sprint(status[0].LocalBytes) != localBytes {
			t.Errorf("after previews: %+v", status[0])
		}
		if desc := mustStrata(t, "", "topics", "describe", "previewed", bs); !strings.Contains(desc, "Configs: segment.bytes=1024\n") {
			t.Errorf("a preview altered the topic:\n%s", desc)
		}
	})

	t.Run("delete-records", func(t *testing.T) {
		mustStrata(t, "", "topics", "create", "trimmed", "--partitions", "2", bs)
		mustStrata(t, strings.Repeat("a\n", 10), "produce", "trimmed", "--partition", "0", bs)
		mustStrata(t, strings.Repeat("b\n", 5), "produce", "trimmed", "--partition", "1", bs)

		out := mustStrata(t, "", "topics", "delete-records", "trimmed", "--partition", "0", "--offset", "3", bs)
		if out != "Executing records delete operation\nRecords delete operation completed:\npartition: trimmed-0\tlow_watermark: 3\n" {
			t.Errorf("delete-records:\n%s", out)
		}
		first := mustStrata(t, "", "consume", "trimmed", "--partition", "0", "--offset", "earliest", "--exit-at-end", "--print-offset", bs)
		if !strings.HasPrefix(first, "Offset:3\t") || strings.Count(first, "\n") != 7 {
			t.Errorf("consumed after deleting below 3:\n%s", first)
		}

		out = mustStrata(t, "", "topics", "delete-records", "trimmed", "--partition", "0,1", "--offset", "-1", bs)
		if !strings.HasSuffix(out, "completed:\npartition: trimmed-0\tlow_watermark: 10\npartition: trimmed-1\tlow_watermark: 5\n") {
			t.Errorf("delete-records to the high watermarks:\n%s", out)
		}

		code, out, errOut := strata(t, "", "topics", "delete-records", "trimmed", "--partition", "1", "--offset", "99", bs)
		if code != 1 || !strings.Contains(out, "partition: trimmed-1\terror: ") || !strings.Contains(out, "OFFSET_OUT_OF_RANGE") ||
			errOut != "strata: records not deleted from 1 of 1 partition(s)\n" {
			t.Errorf("beyond the high watermark: exit %d, stdout %q, stderr %q", code, out, errOut)
		}

		for _, args := range [][]string{
			{"--partition", "0,1", "--offset", "1,2,3"},
			{"--offset", "1"},
			{"--partition", "0", "--offset", "-2"},
			{"--partition", "0,0", "--offset", "1"},
		} {
			code, out, errOut := strata(t, "", append([]string{"topics", "delete-records", "trimmed", bs}, args...)...)
			if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 {
				t.Errorf("delete-records %v: exit %d, stdout %q, stderr %q; want a one-line usage error", args, code, out, errOut)
			}
		}
	})
}
