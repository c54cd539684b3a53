package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/sasl"
)

func newUsersCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Create, delete and list the users SASL clients authenticate as (SCRAM credentials)",
		Long: `Manage users' SCRAM credentials, as kafka-configs --alter --entity-type users
--add-config 'SCRAM-SHA-512=[iterations=8192,password=...]' does. The password
is salted here: the broker stores the salt, the iteration count and the keys
derived from it, never the password. Clients authenticate with SCRAM-SHA-256,
SCRAM-SHA-512, or PLAIN (checked against the same credentials) where the
broker's sasl.enabled.mechanisms offers them.`,
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newUsersCreateCmd(cf), newUsersDeleteCmd(cf), newUsersListCmd(cf))
	return cmd
}

var scramMechanisms = []string{sasl.ScramSHA256, sasl.ScramSHA512}

func newUsersCreateCmd(cf *clientFlags) *cobra.Command {
	var (
		password, passwordFile string
		mechanisms             []string
		iterations             int
	)
	cmd := &cobra.Command{
		Use:   "create USER",
		Short: "Create a user, or set its password",
		Long: `Create a user with a password, or replace the password of one, for each
--mechanism (both SCRAM ones by default). The password comes from --password,
--password-file, or else the first line of stdin; --password leaves it in the
shell history and the process list.`,
		Example: `  strata users create alice --mechanism SCRAM-SHA-512 --iterations 8192 --password-file alice.pw
  echo "$ALICE_PASSWORD" | strata users create alice`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := args[0]
			pw, err := readPassword(cmd, password, passwordFile)
			if err != nil {
				return err
			}
			req := &stratav1.AlterUserScramCredentialsRequest{}
			for _, m := range mechanisms {
				m = strings.ToUpper(m)
				salt := sasl.NewSalt()
				salted, err := sasl.SaltPassword(m, pw, salt, iterations)
				if err != nil {
					return fmt.Errorf("--mechanism %s: not %s", m, strings.Join(scramMechanisms, " or "))
				}
				req.Upsertions = append(req.Upsertions, &stratav1.ScramCredentialUpsertion{
					User: user, Mechanism: m, Iterations: int32(iterations), Salt: salt, SaltedPassword: salted,
				})
			}
			return alterUsers(cmd, cf, req)
		},
	}
	cmd.Flags().StringVar(&password, "password", "", "the user's password (visible to other users of this machine; prefer --password-file or stdin)")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "read the password from the first line of this file")
	cmd.Flags().StringSliceVar(&mechanisms, "mechanism", scramMechanisms, "SCRAM mechanism(s) to set the password for: SCRAM-SHA-256, SCRAM-SHA-512 (repeatable)")
	cmd.Flags().IntVar(&iterations, "iterations", sasl.MinIterations, fmt.Sprintf("PBKDF2 iterations, %d to %d", sasl.MinIterations, sasl.MaxIterations))
	return cmd
}

// readPassword takes the password from the flag, the file, or stdin's
// first line. Errors never hold it.
func readPassword(cmd *cobra.Command, flag, file string) (string, error) {
	if flag != "" && file != "" {
		return "", errors.New("give --password or --password-file, not both")
	}
	if flag != "" {
		return flag, nil
	}
	var r io.Reader = cmd.InOrStdin()
	from := "stdin"
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		defer f.Close()
		r, from = f, file
	}
	line, err := bufio.NewReader(io.LimitReader(r, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from %s: %w", from, err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("no password: give --password, --password-file, or a line on stdin (read %s)", from)
	}
	return pw, nil
}

func newUsersDeleteCmd(cf *clientFlags) *cobra.Command {
	var mechanisms []string
	cmd := &cobra.Command{
		Use:   "delete USER",
		Short: "Delete a user's credentials (all of them unless --mechanism says which)",
		Long: `Delete a user's SCRAM credentials. Connections that authenticated with them
stay open until they re-authenticate (connections.max.reauth.ms).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := args[0]
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				if len(mechanisms) == 0 {
					described, err := c.DescribeUserScramCredentials(ctx, []string{user})
					if err != nil {
						return err
					}
					for _, u := range described {
						if u.GetError() != "" {
							return fmt.Errorf("user %q: %s: %s", user, u.GetError(), u.GetErrorMessage())
						}
						for _, cred := range u.GetCredentials() {
							mechanisms = append(mechanisms, cred.GetMechanism())
						}
					}
				}
				req := &stratav1.AlterUserScramCredentialsRequest{}
				for _, m := range mechanisms {
					req.Deletions = append(req.Deletions, &stratav1.ScramCredentialDeletion{User: user, Mechanism: strings.ToUpper(m)})
				}
				return checkUserResults(c.AlterUserScramCredentials(ctx, req))
			})
		},
	}
	cmd.Flags().StringSliceVar(&mechanisms, "mechanism", nil, "delete only the credential(s) of this SCRAM mechanism (repeatable)")
	return cmd
}

func alterUsers(cmd *cobra.Command, cf *clientFlags, req *stratav1.AlterUserScramCredentialsRequest) error {
	return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
		return checkUserResults(c.AlterUserScramCredentials(ctx, req))
	})
}

func checkUserResults(results []*stratav1.UserScramResult, err error) error {
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range results {
		if r.GetError() != "" {
			errs = append(errs, fmt.Errorf("user %q: %s: %s", r.GetUser(), r.GetError(), r.GetErrorMessage()))
		}
	}
	return errors.Join(errs...)
}

// userCredentialJSON is one row of `users list --output json`.
type userCredentialJSON struct {
	User       string `json:"user"`
	Mechanism  string `json:"mechanism"`
	Iterations int32  `json:"iterations"`
}

func newUsersListCmd(cf *clientFlags) *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "list [USER...]",
		Short: "List users and their SCRAM mechanisms and iterations (every user unless named)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				described, err := c.DescribeUserScramCredentials(ctx, args)
				if err != nil {
					return err
				}
				var rows []userCredentialJSON
				var errs []error
				for _, u := range described {
					if u.GetError() != "" {
						errs = append(errs, fmt.Errorf("user %q: %s: %s", u.GetUser(), u.GetError(), u.GetErrorMessage()))
						continue
					}
					for _, cred := range u.GetCredentials() {
						rows = append(rows, userCredentialJSON{User: u.GetUser(), Mechanism: cred.GetMechanism(), Iterations: cred.GetIterations()})
					}
				}
				w := cmd.OutOrStdout()
				if output == outputJSON {
					if rows == nil {
						rows = []userCredentialJSON{}
					}
					if err := writeJSON(w, rows); err != nil {
						return err
					}
					return errors.Join(errs...)
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tMECHANISM\tITERATIONS")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%d\n", r.User, r.Mechanism, r.Iterations)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				return errors.Join(errs...)
			})
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	return cmd
}
