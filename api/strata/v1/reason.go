package stratav1

// ReasonName is r as PartitionError.reason carries it: the value's name,
// or "" for ERROR_REASON_UNSPECIFIED, which clients read as no reason. The
// reason travels as a string so that the names clients compare stay those
// of Kafka's errors.
func (r ErrorReason) ReasonName() string {
	if r == ErrorReason_ERROR_REASON_UNSPECIFIED {
		return ""
	}
	return r.String()
}

// ParseReason is the ErrorReason whose ReasonName is name, and
// ERROR_REASON_UNSPECIFIED for "" or a name this build does not know (a
// newer server's).
func ParseReason(name string) ErrorReason {
	if name == "" {
		return ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	return ErrorReason(ErrorReason_value[name])
}
