package client

import (
	"context"
	"fmt"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// AlterUserScramCredentials deletes and upserts users' SCRAM credentials
// (see sasl.SaltPassword for an upsertion's salted password). Each user's
// outcome is in its result.
func (c *Client) AlterUserScramCredentials(ctx context.Context, req *stratav1.AlterUserScramCredentialsRequest) ([]*stratav1.UserScramResult, error) {
	var resp *stratav1.AlterUserScramCredentialsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.AlterUserScramCredentials(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("alter user SCRAM credentials: %w", err)
	}
	return resp.GetResults(), nil
}

// DescribeUserScramCredentials describes the named users' SCRAM
// credentials, or every user's when none is named.
func (c *Client) DescribeUserScramCredentials(ctx context.Context, users []string) ([]*stratav1.UserScramCredentials, error) {
	var resp *stratav1.DescribeUserScramCredentialsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.DescribeUserScramCredentials(ctx, &stratav1.DescribeUserScramCredentialsRequest{Users: users})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe user SCRAM credentials: %w", err)
	}
	return resp.GetUsers(), nil
}
