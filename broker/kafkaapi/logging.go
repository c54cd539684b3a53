package kafkaapi

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// clientIDLogBytes is as much of a client id as a log line shows: a client
// id may be 32 KiB, and a client that sends bad requests would otherwise
// write that much into the log with each.
const clientIDLogBytes = 128

// clientForLog quotes a client id for a log line or error, cut to
// clientIDLogBytes.
func clientForLog(id string) string {
	if len(id) <= clientIDLogBytes {
		return strconv.Quote(id)
	}
	return fmt.Sprintf("%q... (%d bytes)", id[:clientIDLogBytes], len(id))
}

// connLog writes the lines about connections that clients cause (bad
// requests, connections refused or cut off), which a client can cause as
// fast as it can connect: at most connLogBurst at once and connLogPerSecond
// after. The next line written says how many were left out; the metrics
// count every one.
type connLog struct {
	logger  *slog.Logger
	limit   *rate.Limiter
	dropped atomic.Int64
}

const (
	connLogPerSecond = 10
	connLogBurst     = 20
)

func newConnLog(logger *slog.Logger) *connLog {
	return &connLog{logger: logger, limit: rate.NewLimiter(connLogPerSecond, connLogBurst)}
}

func (l *connLog) log(level slog.Level, msg string, args ...any) {
	if !l.logger.Enabled(context.Background(), level) {
		return
	}
	if !l.limit.AllowN(time.Now(), 1) {
		l.dropped.Add(1)
		return
	}
	if n := l.dropped.Swap(0); n > 0 {
		args = append(args, "suppressed_since_last", n)
	}
	l.logger.Log(context.Background(), level, msg, args...)
}
