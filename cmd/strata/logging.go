package main

import (
	"fmt"
	"io"
	"log/slog"
)

// logFormat is the value of --log-format.
type logFormat string

const (
	logJSON logFormat = "json"
	logText logFormat = "text"
)

func (l *logFormat) String() string { return string(*l) }
func (l *logFormat) Type() string   { return "json|text" }
func (l *logFormat) Set(s string) error {
	switch logFormat(s) {
	case logJSON, logText:
		*l = logFormat(s)
		return nil
	}
	return fmt.Errorf("want json or text")
}

// newLogger is the broker's logger: JSON lines for log collectors, or
// slog's key=value text for a person at a terminal. Durations read as
// "2s" in both: slog's JSON handler would write them as integer
// nanoseconds, which nobody reads at a glance.
func newLogger(w io.Writer, format logFormat, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: humanDurations}
	if format == logText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func humanDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
