package tlsconf

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrNoMatchingRule is returned by PrincipalMapper.Name when no rule
// applies to a certificate's subject: Kafka then fails the client's
// authentication.
var ErrNoMatchingRule = errors.New("no ssl.principal.mapping.rules rule applies")

// PrincipalMapper turns a certificate's subject (its RFC 2253 name) into
// a principal name, by Kafka's ssl.principal.mapping.rules: a list of
// RULE:pattern/replacement/[LU] and DEFAULT, separated by commas, tried in
// order. A RULE applies when its pattern matches the whole subject; the
// name is then the subject with the pattern replaced ($1 is a group),
// lower- or upper-cased with L or U. DEFAULT applies to every subject and
// keeps it whole. The zero value and nil are DEFAULT alone.
type PrincipalMapper struct {
	rules []mappingRule
	text  string
}

type mappingRule struct {
	isDefault bool
	match     *regexp.Regexp // the pattern, anchored: it must match the whole subject
	pattern   *regexp.Regexp
	template  string // the replacement, as regexp's Expand reads it
	lower     bool
	upper     bool
}

// ParsePrincipalMappingRules reads the value of ssl.principal.mapping.rules;
// empty means DEFAULT.
func ParsePrincipalMappingRules(s string) (*PrincipalMapper, error) {
	m := &PrincipalMapper{text: s}
	if strings.TrimSpace(s) == "" {
		return &PrincipalMapper{text: "DEFAULT", rules: []mappingRule{{isDefault: true}}}, nil
	}
	rest := s
	for {
		rest = strings.TrimLeft(rest, " \t\r\n")
		if rest == "" {
			break
		}
		var r mappingRule
		switch {
		case strings.HasPrefix(rest, "DEFAULT"):
			r.isDefault = true
			rest = rest[len("DEFAULT"):]
		case strings.HasPrefix(rest, "RULE:"):
			var pattern, replacement string
			var ok bool
			if pattern, rest, ok = untilSlash(rest[len("RULE:"):]); !ok {
				return nil, fmt.Errorf("ssl.principal.mapping.rules %q: a RULE is RULE:pattern/replacement/[LU]", s)
			}
			if replacement, rest, ok = untilSlash(rest); !ok {
				return nil, fmt.Errorf("ssl.principal.mapping.rules %q: a RULE is RULE:pattern/replacement/[LU]", s)
			}
			if rest != "" && (rest[0] == 'L' || rest[0] == 'U') {
				r.lower, r.upper = rest[0] == 'L', rest[0] == 'U'
				rest = rest[1:]
			}
			var err error
			if r.pattern, err = regexp.Compile(pattern); err != nil {
				return nil, fmt.Errorf("ssl.principal.mapping.rules: pattern %q: %w", pattern, err)
			}
			r.match = regexp.MustCompile(`^(?:` + pattern + `)$`)
			r.template = javaReplacement(replacement)
		default:
			return nil, fmt.Errorf("ssl.principal.mapping.rules %q: invalid rule at %q (RULE:pattern/replacement/[LU] or DEFAULT)", s, rest)
		}
		m.rules = append(m.rules, r)
		rest = strings.TrimLeft(rest, " \t\r\n")
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return nil, fmt.Errorf("ssl.principal.mapping.rules %q: unexpected %q after a rule", s, rest)
		}
		rest = rest[1:]
	}
	if len(m.rules) == 0 {
		return nil, fmt.Errorf("ssl.principal.mapping.rules %q: no rule", s)
	}
	return m, nil
}

// untilSlash splits s at its first slash that no backslash escapes,
// leaving escapes as they are (the pattern is a regular expression, where
// \/ is a slash).
func untilSlash(s string) (before, after string, ok bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '/':
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// javaReplacement turns a Java replacement string ($1 a group, \x a
// literal x) into regexp's template syntax (${1}, $$ a dollar sign).
func javaReplacement(r string) string {
	var b strings.Builder
	for i := 0; i < len(r); i++ {
		switch c := r[i]; {
		case c == '\\' && i+1 < len(r):
			i++
			if r[i] == '$' {
				b.WriteString("$$")
			} else {
				b.WriteByte(r[i])
			}
		case c == '$':
			j := i + 1
			for j < len(r) && r[j] >= '0' && r[j] <= '9' {
				j++
			}
			if j == i+1 {
				b.WriteString("$$")
				continue
			}
			b.WriteString("${" + r[i+1:j] + "}")
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Name is the principal name of the certificate subject dn (without the
// "User:" type), or ErrNoMatchingRule.
func (m *PrincipalMapper) Name(dn string) (string, error) {
	if m == nil || len(m.rules) == 0 {
		return dn, nil
	}
	for _, r := range m.rules {
		if r.isDefault {
			return dn, nil
		}
		if !r.match.MatchString(dn) {
			continue
		}
		name := r.pattern.ReplaceAllString(dn, r.template)
		switch {
		case r.lower:
			name = strings.ToLower(name)
		case r.upper:
			name = strings.ToUpper(name)
		}
		return name, nil
	}
	return "", fmt.Errorf("%w to %q (rules %s)", ErrNoMatchingRule, dn, m.text)
}

// String is the rules as configured.
func (m *PrincipalMapper) String() string {
	if m == nil || m.text == "" {
		return "DEFAULT"
	}
	return m.text
}
