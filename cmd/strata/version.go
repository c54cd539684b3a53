package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/internal/version"
)

// versionJSON is the output of `strata version --output json`.
type versionJSON struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
}

func newVersionCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and source revision of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Get()
			if output == outputJSON {
				return writeJSON(cmd.OutOrStdout(), versionJSON{Version: v.Version, Revision: v.Revision, Modified: v.Modified, GoVersion: v.GoVersion})
			}
			fmt.Fprintln(cmd.OutOrStdout(), v)
			return nil
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	return cmd
}

// setVersion gives root a --version flag printing what `strata version` does.
func setVersion(root *cobra.Command) {
	root.Version = version.Get().String()
	root.SetVersionTemplate("{{.Version}}\n")
}
