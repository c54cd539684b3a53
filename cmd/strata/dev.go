package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDevCmd is replaced by the real single-process broker command.
func newDevCmd() *cobra.Command {
	return &cobra.Command{Use: "dev", Short: "Run a broker with embedded etcd", RunE: func(*cobra.Command, []string) error {
		return errors.New("not built yet")
	}}
}

func newBrokerCmd() *cobra.Command {
	return &cobra.Command{Use: "broker", Short: "Run a broker", RunE: func(*cobra.Command, []string) error {
		return errors.New("not built yet")
	}}
}
