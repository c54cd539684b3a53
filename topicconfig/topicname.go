package topicconfig

import (
	"errors"
	"fmt"
	"strings"
)

// MaxTopicNameLength is Kafka's limit on topic names.
const MaxTopicNameLength = 249

// ErrInvalidTopicName is wrapped by every error of ValidTopicName, for
// callers that map it to Kafka's INVALID_TOPIC_EXCEPTION.
var ErrInvalidTopicName = errors.New("invalid topic name")

// ValidTopicName applies Kafka's rule: 1 to 249 characters, each an ASCII
// letter or digit, '.', '_' or '-', and not "." or "..".
func ValidTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopicName)
	case name == "." || name == "..":
		return fmt.Errorf("%w %q: \".\" and \"..\" are not allowed", ErrInvalidTopicName, name)
	case len(name) > MaxTopicNameLength:
		return fmt.Errorf("%w %q: %d characters, at most %d are allowed",
			ErrInvalidTopicName, abbreviate(name), len(name), MaxTopicNameLength)
	}
	for i, r := range name {
		if !validTopicRune(r) {
			return fmt.Errorf("%w %q: character %q at position %d is not allowed (only ASCII letters, digits, '.', '_' and '-')",
				ErrInvalidTopicName, abbreviate(name), r, i)
		}
	}
	return nil
}

func validTopicRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// abbreviate shortens a long name for an error message.
func abbreviate(name string) string {
	const keep = 64
	if len(name) <= keep {
		return name
	}
	return name[:keep] + "..."
}

// TopicNamesCollide reports whether two topic names differ only in '.'
// versus '_'. Kafka refuses to create a topic that collides with an existing
// one, because both map to the same metric names.
func TopicNamesCollide(a, b string) bool {
	return a != b && strings.ReplaceAll(a, ".", "_") == strings.ReplaceAll(b, ".", "_")
}
