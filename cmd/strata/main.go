// Command strata is Strata's single binary: the broker (`strata broker`,
// `strata dev`), the client tools (`topics`, `produce`, `consume`, `bench`)
// and a local multi-broker test environment (`testenv`).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code. A failure
// is reported as one line on stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal asks for a clean stop (flush, close); after it the
	// default handling is back, so a second Ctrl-C ends a stuck process.
	defer context.AfterFunc(ctx, stop)()
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "strata: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Strata: a Kafka-compatible event-streaming broker",
		Long: `Strata is a Kafka-compatible event-streaming broker. This binary runs the
broker (strata broker, strata dev) and the client tools, which talk to a
broker's gRPC API (--bootstrap-server, default localhost:9093, or
$STRATA_BOOTSTRAP_SERVER).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	root.AddCommand(
		newDevCmd(),
		newBrokerCmd(),
		newTopicsCmd(),
		newProduceCmd(),
		newConsumeCmd(),
		newGroupsCmd(),
		newTransactionsCmd(),
		newBrokersCmd(),
		newClusterCmd(),
		newPartitionsCmd(),
		newUsersCmd(),
		newACLsCmd(),
		newTieringCmd(),
		newRetentionCmd(),
		newBenchCmd(),
		newTestenvCmd(),
		newReplayCmd(),
		newVersionCmd(),
	)
	setVersion(root)
	return root
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.TrimSpace(s)), " ")
}
