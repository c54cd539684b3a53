package topicconfig

import (
	"errors"
	"testing"
	"time"
)

func TestTransactionSettings(t *testing.T) {
	for _, c := range []struct {
		read func(map[string]string) (time.Duration, error)
		key  string
		def  time.Duration
	}{
		{TransactionMaxTimeout, TransactionMaxTimeoutKey, 15 * time.Minute},
		{TransactionalIDExpiration, TransactionalIDExpirationKey, 7 * 24 * time.Hour},
	} {
		if got, err := c.read(nil); err != nil || got != c.def {
			t.Errorf("%s unset = %v, %v; want %v", c.key, got, err, c.def)
		}
		if got, err := c.read(map[string]string{c.key: " 60000 "}); err != nil || got != time.Minute {
			t.Errorf("%s=60000 = %v, %v; want 1m", c.key, got, err)
		}
		if err := CheckBrokerKeys(map[string]string{c.key: "1"}); err != nil {
			t.Errorf("CheckBrokerKeys refuses %s: %v", c.key, err)
		}
		for _, bad := range []string{"0", "-1", "x", "2147483648", ""} {
			_, err := c.read(map[string]string{c.key: bad})
			var ve *ValueError
			if !errors.As(err, &ve) || ve.Key != c.key {
				t.Errorf("%s=%q: %v, want a *ValueError", c.key, bad, err)
			}
		}
	}
}
