package topicconfig

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Kafka's keys declaring several named Kafka listeners.
const (
	ListenersKey                   = "listeners"
	AdvertisedListenersKey         = "advertised.listeners"
	ListenerSecurityProtocolMapKey = "listener.security.protocol.map"
	// listenerPrefix begins a listener's own settings, Kafka's
	// listener.name.<name>. with the name in lower case.
	listenerPrefix = "listener.name."
)

// securityProtocols are Kafka's security protocols. The SASL ones are
// parsed like the others; whether a broker can serve them is the broker's
// decision, not the parser's.
var securityProtocols = []string{"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}

// listenerName is what a listener's name may be: it becomes part of the
// keys listener.name.<name>.*, so no dots.
var listenerName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ListenerConfig is one Kafka listener as the broker settings declare it.
type ListenerConfig struct {
	// Name is upper case, as Kafka normalises listener names.
	Name     string
	Protocol string
	// Addr is host:port to bind; an empty host binds every interface,
	// port 0 a port the system picks.
	Addr string
	// Advertised is the host:port published for clients of this
	// listener; empty means the address it binds.
	Advertised string
}

// KafkaListeners reads Kafka's listeners, listener.security.protocol.map
// and advertised.listeners: several named listeners, each with its
// security protocol and, optionally, its advertised address. It returns
// nil when listeners is not set. Kafka's rules apply: every name is
// mapped to a protocol (the default map maps PLAINTEXT, SSL,
// SASL_PLAINTEXT and SASL_SSL to themselves), names and ports are
// unique, advertised.listeners names only declared listeners and never
// advertises 0.0.0.0.
func KafkaListeners(brokerSettings map[string]string) ([]ListenerConfig, error) {
	raw, ok := brokerSettings[ListenersKey]
	if !ok || strings.TrimSpace(raw) == "" {
		if _, ok := brokerSettings[AdvertisedListenersKey]; ok {
			return nil, fmt.Errorf("%s is set without %s", AdvertisedListenersKey, ListenersKey)
		}
		return nil, nil
	}
	protocols, err := securityProtocolMap(brokerSettings)
	if err != nil {
		return nil, err
	}
	entries, err := parseListenerList(ListenersKey, raw)
	if err != nil {
		return nil, err
	}
	var out []ListenerConfig
	ports := map[string]string{} // port: listener name
	for _, e := range entries {
		p, ok := protocols[e.name]
		if !ok {
			return nil, &ValueError{Key: ListenersKey, Value: raw, Reason: fmt.Sprintf(
				"listener %s has no security protocol: add it to %s (e.g. %s:SSL)", e.name, ListenerSecurityProtocolMapKey, e.name)}
		}
		_, port, _ := net.SplitHostPort(e.addr)
		if other, dup := ports[port]; dup && port != "0" {
			return nil, &ValueError{Key: ListenersKey, Value: raw, Reason: fmt.Sprintf(
				"listeners %s and %s both use port %s: each listener must have a different port", other, e.name, port)}
		}
		ports[port] = e.name
		out = append(out, ListenerConfig{Name: e.name, Protocol: p, Addr: e.addr})
	}
	if adv, ok := brokerSettings[AdvertisedListenersKey]; ok && strings.TrimSpace(adv) != "" {
		advertised, err := parseListenerList(AdvertisedListenersKey, adv)
		if err != nil {
			return nil, err
		}
		for _, a := range advertised {
			i := slices.IndexFunc(out, func(l ListenerConfig) bool { return l.Name == a.name })
			if i < 0 {
				return nil, &ValueError{Key: AdvertisedListenersKey, Value: adv, Reason: fmt.Sprintf(
					"listener %s is not in %s: advertised listeners must be a subset of the listeners", a.name, ListenersKey)}
			}
			host, port, _ := net.SplitHostPort(a.addr)
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				return nil, &ValueError{Key: AdvertisedListenersKey, Value: adv, Reason: fmt.Sprintf(
					"listener %s advertises %q, which clients cannot connect to: name a host", a.name, a.addr)}
			}
			if port == "0" {
				return nil, &ValueError{Key: AdvertisedListenersKey, Value: adv, Reason: fmt.Sprintf(
					"listener %s advertises port 0", a.name)}
			}
			out[i].Advertised = a.addr
		}
	}
	names := make([]string, len(out))
	for i, l := range out {
		names[i] = l.Name
	}
	if err := CheckListenerSettings(brokerSettings, names); err != nil {
		return nil, err
	}
	return out, nil
}

// CheckListenerSettings refuses listener.name.<name>.* settings whose
// name is none of the broker's listeners: such a setting would be
// silently ignored.
func CheckListenerSettings(brokerSettings map[string]string, listeners []string) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(brokerSettings)) {
		rest, ok := strings.CutPrefix(k, listenerPrefix)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, ".")
		if slices.ContainsFunc(listeners, func(l string) bool { return strings.EqualFold(l, name) }) {
			continue
		}
		have := "it has no Kafka listener"
		if len(listeners) > 0 {
			have = "its listeners: " + strings.Join(listeners, ", ")
		}
		errs = append(errs, fmt.Errorf("broker setting %s: the broker has no listener named %s (%s)", k, strings.ToUpper(name), have))
	}
	return errors.Join(errs...)
}

// listenerEntry is one NAME://host:port of a list.
type listenerEntry struct{ name, addr string }

// parseListenerList reads a comma-separated list of NAME://host:port,
// names unique.
func parseListenerList(key, raw string) ([]listenerEntry, error) {
	var out []listenerEntry
	for _, item := range strings.Split(raw, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		bad := func(reason string) error {
			return &ValueError{Key: key, Value: raw, Reason: fmt.Sprintf("%q: %s", item, reason)}
		}
		name, addr, ok := strings.Cut(item, "://")
		if !ok {
			return nil, bad("want NAME://host:port")
		}
		if !listenerName.MatchString(name) {
			return nil, bad("a listener name is letters, digits, _ and -")
		}
		name = strings.ToUpper(name)
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, bad(err.Error())
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || port != strconv.FormatUint(n, 10) {
			return nil, bad("bad port " + strconv.Quote(port))
		}
		if slices.ContainsFunc(out, func(e listenerEntry) bool { return e.name == name }) {
			return nil, bad("listener " + name + " is named twice: each listener must have a different name")
		}
		out = append(out, listenerEntry{name: name, addr: addr})
	}
	if len(out) == 0 {
		return nil, &ValueError{Key: key, Value: raw, Reason: "no listener"}
	}
	return out, nil
}

// securityProtocolMap reads listener.security.protocol.map
// (NAME:PROTOCOL,...), or Kafka's default when it is not set.
func securityProtocolMap(settings map[string]string) (map[string]string, error) {
	raw, ok := settings[ListenerSecurityProtocolMapKey]
	if !ok || strings.TrimSpace(raw) == "" {
		m := map[string]string{}
		for _, p := range securityProtocols {
			m[p] = p
		}
		return m, nil
	}
	m := map[string]string{}
	var errs []error
	for _, item := range strings.Split(raw, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, protocol, ok := strings.Cut(item, ":")
		name, protocol = strings.ToUpper(strings.TrimSpace(name)), strings.ToUpper(strings.TrimSpace(protocol))
		switch {
		case !ok || !listenerName.MatchString(name):
			errs = append(errs, &ValueError{Key: ListenerSecurityProtocolMapKey, Value: raw, Reason: fmt.Sprintf("%q: want NAME:PROTOCOL", item)})
		case !slices.Contains(securityProtocols, protocol):
			errs = append(errs, &ValueError{Key: ListenerSecurityProtocolMapKey, Value: raw, Reason: fmt.Sprintf(
				"listener %s: unknown security protocol %q (%s)", name, protocol, strings.Join(securityProtocols, ", "))})
		default:
			if _, dup := m[name]; dup {
				errs = append(errs, &ValueError{Key: ListenerSecurityProtocolMapKey, Value: raw, Reason: "listener " + name + " is mapped twice"})
			}
			m[name] = protocol
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// ListenerSSL reads a Kafka listener's TLS settings: each ssl.* key from
// listener.name.<name>.ssl.* when set there, else from ssl.*, as Kafka
// overrides key by key.
func ListenerSSL(brokerSettings map[string]string, listener string) (SSL, error) {
	prefix := listenerPrefix + strings.ToLower(listener) + "."
	merged := map[string]string{}
	for _, k := range listenerKeys() {
		if v, ok := brokerSettings[prefix+k]; ok {
			merged[k] = v
		} else if v, ok := brokerSettings[k]; ok {
			merged[k] = v
		}
	}
	ssl, err := readSSL(merged, "")
	if err != nil {
		return SSL{}, fmt.Errorf("listener %s (%s* or ssl.*): %w", listener, prefix, err)
	}
	return ssl, nil
}

// listenerKeys are the settings a listener may override under
// listener.name.<name>.: its TLS keys.
func listenerKeys() []string {
	return slices.DeleteFunc(slices.Clone(brokerReadKeys), func(k string) bool { return !strings.HasPrefix(k, "ssl.") })
}

// isListenerKey reports whether key is listener.name.<name>.<a key a
// listener may override>; whether <name> is a declared listener is
// KafkaListeners' check.
func isListenerKey(key string) bool {
	rest, ok := strings.CutPrefix(key, listenerPrefix)
	if !ok {
		return false
	}
	name, k, ok := strings.Cut(rest, ".")
	return ok && listenerName.MatchString(name) && slices.Contains(listenerKeys(), k)
}
