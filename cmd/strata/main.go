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
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "strata: %s\n", explainError(context.WithoutCancel(ctx), err, bootstrapOf(cmd)))
		return 1
	}
	return 0
}

// bootstrapOf is the broker address list cmd used, "" when cmd does not
// talk to a broker.
func bootstrapOf(cmd *cobra.Command) string {
	if cmd == nil {
		return ""
	}
	f := cmd.Flags().Lookup("bootstrap-server")
	if f == nil {
		return ""
	}
	return resolveBootstrap(f.Value.String(), os.Getenv(bootstrapEnv))
}

// refuseUnknownSubcommands makes every command that only groups others
// (strata topics) fail on an argument that names none of them, as the root
// does; cobra would print the help and exit 0, which a script takes for
// success.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		c.SuggestionsMinimumDistance = 2
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return fmt.Errorf("%s (see '%s --help')", msg, c.CommandPath())
	}
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
	root.SetFlagErrorFunc(flagError)
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
	refuseUnknownSubcommands(root)
	return root
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.TrimSpace(s)), " ")
}
