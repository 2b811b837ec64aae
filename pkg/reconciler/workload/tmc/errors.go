package tmc

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
)

// TMCErrorType categorises a failure by what a controller should do about it.
// The set is closed so that it can be used as a bounded metric label; see
// AllTMCErrorTypes.
type TMCErrorType string

const (
	// TMCErrorTypeClusterUnreachable means the apiserver could not be reached or
	// did not serve the request (connection refused/reset, broken connection, 503).
	TMCErrorTypeClusterUnreachable TMCErrorType = "ClusterUnreachable"
	// TMCErrorTypeResourceConflict means an optimistic-concurrency conflict, an
	// object that already exists, or an object we do not own.
	TMCErrorTypeResourceConflict TMCErrorType = "ResourceConflict"
	// TMCErrorTypeInvalidResource means the apiserver rejected the object itself;
	// retrying the same object cannot succeed.
	TMCErrorTypeInvalidResource TMCErrorType = "InvalidResource"
	// TMCErrorTypeForbidden means RBAC denied the request.
	TMCErrorTypeForbidden TMCErrorType = "Forbidden"
	// TMCErrorTypeUnauthorized means the credentials were rejected.
	TMCErrorTypeUnauthorized TMCErrorType = "Unauthorized"
	// TMCErrorTypeNotFound means the object (or its namespace) does not exist.
	TMCErrorTypeNotFound TMCErrorType = "NotFound"
	// TMCErrorTypeAPINotAvailable means the resource type is not served, e.g. a
	// CRD that is not installed downstream.
	TMCErrorTypeAPINotAvailable TMCErrorType = "APINotAvailable"
	// TMCErrorTypeQuotaExceeded means a ResourceQuota rejected the request.
	TMCErrorTypeQuotaExceeded TMCErrorType = "QuotaExceeded"
	// TMCErrorTypeAdmissionDenied means an admission webhook or a
	// ValidatingAdmissionPolicy rejected the request.
	TMCErrorTypeAdmissionDenied TMCErrorType = "AdmissionDenied"
	// TMCErrorTypeTimeout means the request or the connection timed out.
	TMCErrorTypeTimeout TMCErrorType = "Timeout"
	// TMCErrorTypeRateLimited means the server asked the client to slow down (429).
	TMCErrorTypeRateLimited TMCErrorType = "RateLimited"
	// TMCErrorTypeNamespaceCollision means a downstream namespace exists that is
	// not owned by this syncer.
	TMCErrorTypeNamespaceCollision TMCErrorType = "NamespaceCollision"
	// TMCErrorTypeUpstreamLost means an upstream object vanished without a deletion
	// (no deletionTimestamp was seen) while its downstream copy is still ours: the copy is
	// kept, and only an operator can resume its deletion.
	TMCErrorTypeUpstreamLost TMCErrorType = "UpstreamLost"
	// TMCErrorTypeUnknown is everything else.
	TMCErrorTypeUnknown TMCErrorType = "Unknown"
)

// AllTMCErrorTypes returns every TMCErrorType in a stable order. Callers may
// modify the returned slice.
func AllTMCErrorTypes() []TMCErrorType {
	return []TMCErrorType{
		TMCErrorTypeClusterUnreachable,
		TMCErrorTypeResourceConflict,
		TMCErrorTypeInvalidResource,
		TMCErrorTypeForbidden,
		TMCErrorTypeUnauthorized,
		TMCErrorTypeNotFound,
		TMCErrorTypeAPINotAvailable,
		TMCErrorTypeQuotaExceeded,
		TMCErrorTypeAdmissionDenied,
		TMCErrorTypeTimeout,
		TMCErrorTypeRateLimited,
		TMCErrorTypeNamespaceCollision,
		TMCErrorTypeUpstreamLost,
		TMCErrorTypeUnknown,
	}
}

// IsKnown reports whether t is one of the types returned by AllTMCErrorTypes.
func (t TMCErrorType) IsKnown() bool {
	for _, known := range AllTMCErrorTypes() {
		if t == known {
			return true
		}
	}
	return false
}

// DefaultSeverity is the severity NewTMCError callers are expected to use and
// the one Classify assigns:
//
//   - Critical: Unauthorized (nothing can sync with rejected credentials).
//   - High: ClusterUnreachable, Forbidden, APINotAvailable, UpstreamLost (a whole
//     cluster or resource type is affected, or an operator must act).
//   - Medium: ResourceConflict, InvalidResource, QuotaExceeded, AdmissionDenied,
//     Timeout, NamespaceCollision, Unknown and unrecognised types (one object
//     or namespace is affected).
//   - Low: NotFound, RateLimited (expected in normal operation).
func (t TMCErrorType) DefaultSeverity() TMCErrorSeverity {
	switch t {
	case TMCErrorTypeUnauthorized:
		return TMCErrorSeverityCritical
	case TMCErrorTypeClusterUnreachable, TMCErrorTypeForbidden, TMCErrorTypeAPINotAvailable, TMCErrorTypeUpstreamLost:
		return TMCErrorSeverityHigh
	case TMCErrorTypeNotFound, TMCErrorTypeRateLimited:
		return TMCErrorSeverityLow
	default:
		return TMCErrorSeverityMedium
	}
}

// DefaultRetryable reports whether retrying the same request can succeed
// without anybody changing anything: true for ClusterUnreachable,
// ResourceConflict, QuotaExceeded, Timeout, RateLimited, Unknown and
// unrecognised types. The other types need a human (or another controller)
// to act first; the recovery manager still retries Forbidden, Unauthorized,
// APINotAvailable, AdmissionDenied, InvalidResource and NamespaceCollision
// slowly so that a fix is picked up without a restart.
func (t TMCErrorType) DefaultRetryable() bool {
	switch t {
	case TMCErrorTypeInvalidResource, TMCErrorTypeForbidden, TMCErrorTypeUnauthorized,
		TMCErrorTypeNotFound, TMCErrorTypeAPINotAvailable, TMCErrorTypeAdmissionDenied,
		TMCErrorTypeNamespaceCollision, TMCErrorTypeUpstreamLost:
		return false
	default:
		return true
	}
}

// IsConnectionFailure reports whether t says the target cluster itself is in
// trouble rather than a single request. Only these types count towards
// opening a circuit breaker.
func (t TMCErrorType) IsConnectionFailure() bool {
	return t == TMCErrorTypeClusterUnreachable || t == TMCErrorTypeTimeout
}

// TMCErrorSeverity says how urgently a failure needs attention.
type TMCErrorSeverity string

const (
	// TMCErrorSeverityLow is expected in normal operation.
	TMCErrorSeverityLow TMCErrorSeverity = "Low"
	// TMCErrorSeverityMedium affects a single object or namespace.
	TMCErrorSeverityMedium TMCErrorSeverity = "Medium"
	// TMCErrorSeverityHigh affects a whole cluster or resource type.
	TMCErrorSeverityHigh TMCErrorSeverity = "High"
	// TMCErrorSeverityCritical stops all syncing.
	TMCErrorSeverityCritical TMCErrorSeverity = "Critical"
)

// TMCError is a classified failure. Create it with NewTMCError or Classify and
// add context with the With* methods; a struct literal leaves Retryable false,
// which the RecoveryManager honours.
type TMCError struct {
	// Type categorises the failure.
	Type TMCErrorType
	// Severity says how urgent the failure is.
	Severity TMCErrorSeverity
	// Component is the part of TMC that failed, e.g. "syncer".
	Component string
	// Operation is what the component was doing, e.g. "apply" or "update-status".
	Operation string
	// Resource identifies the object, e.g. "deployments.apps ns/name".
	Resource string
	// Workspace is the logical cluster of the upstream object.
	Workspace string
	// Cluster is the name of the downstream cluster (SyncTarget).
	Cluster string
	// Message is a human-readable summary. Classify leaves it empty so that
	// Error does not repeat the cause.
	Message string
	// Retryable reports whether retrying without any change can succeed.
	Retryable bool
	// RetryAfter is the delay the server asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Cause is the underlying error.
	Cause error
	// Timestamp is when the error was created.
	Timestamp time.Time
}

// NewTMCError returns a TMCError of the given type wrapping cause. Retryable
// is set from errType.DefaultRetryable.
func NewTMCError(errType TMCErrorType, cause error, message string, severity TMCErrorSeverity) *TMCError {
	if errType == "" {
		errType = TMCErrorTypeUnknown
	}
	if severity == "" {
		severity = errType.DefaultSeverity()
	}
	return &TMCError{
		Type:      errType,
		Severity:  severity,
		Message:   message,
		Retryable: errType.DefaultRetryable(),
		Cause:     cause,
		Timestamp: time.Now(),
	}
}

// Error returns "<Type> (<component>/<operation> <resource>): <message>: <cause>",
// leaving out the parts that are not set.
func (e *TMCError) Error() string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	if e.Type == "" {
		b.WriteString(string(TMCErrorTypeUnknown))
	} else {
		b.WriteString(string(e.Type))
	}

	scope := e.Component
	if e.Operation != "" {
		if scope != "" {
			scope += "/"
		}
		scope += e.Operation
	}
	if e.Resource != "" {
		if scope != "" {
			scope += " "
		}
		scope += e.Resource
	}
	if scope != "" {
		b.WriteString(" (")
		b.WriteString(scope)
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the cause so that errors.Is and errors.As see through a TMCError.
func (e *TMCError) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Cause
}

// Is makes a *TMCError usable as a pattern for errors.Is: it matches when
// every non-empty Type, Severity, Component, Operation, Resource, Workspace and
// Cluster of target equals the field of e. errors.Is(err, &TMCError{Type: X})
// therefore matches any TMCError of type X; the other fields of target are
// ignored.
func (e *TMCError) Is(target error) bool {
	t, ok := target.(*TMCError)
	if !ok || t == nil || e == nil {
		return false
	}
	matches := func(want, got string) bool { return want == "" || want == got }
	return matches(string(t.Type), string(e.Type)) &&
		matches(string(t.Severity), string(e.Severity)) &&
		matches(t.Component, e.Component) &&
		matches(t.Operation, e.Operation) &&
		matches(t.Resource, e.Resource) &&
		matches(t.Workspace, e.Workspace) &&
		matches(t.Cluster, e.Cluster)
}

// WithComponent sets Component and returns e for chaining.
func (e *TMCError) WithComponent(component string) *TMCError {
	if e != nil {
		e.Component = component
	}
	return e
}

// WithOperation sets Operation and returns e for chaining.
func (e *TMCError) WithOperation(operation string) *TMCError {
	if e != nil {
		e.Operation = operation
	}
	return e
}

// WithResource sets Resource and returns e for chaining.
func (e *TMCError) WithResource(resource string) *TMCError {
	if e != nil {
		e.Resource = resource
	}
	return e
}

// WithWorkspace sets Workspace and returns e for chaining.
func (e *TMCError) WithWorkspace(workspace string) *TMCError {
	if e != nil {
		e.Workspace = workspace
	}
	return e
}

// WithCluster sets Cluster and returns e for chaining.
func (e *TMCError) WithCluster(cluster string) *TMCError {
	if e != nil {
		e.Cluster = cluster
	}
	return e
}

// Classify turns any error into a TMCError. It returns nil for nil and the
// first *TMCError in err's chain if there is one; otherwise it inspects err:
//
//   - context.Canceled: Unknown, not retryable, because the caller is shutting
//     down or gave up; the recovery manager never retries it.
//   - context.DeadlineExceeded and net.Error timeouts: Timeout.
//   - Kubernetes API statuses: see classifyAPIStatus.
//   - meta.NoKindMatchError / NoResourceMatchError: APINotAvailable.
//   - Connection failures (net.OpError, DNS errors, ECONNREFUSED, ECONNRESET,
//     EHOSTUNREACH, ENETUNREACH, EPIPE, io.EOF, io.ErrUnexpectedEOF,
//     net.ErrClosed), also inside *url.Error: ClusterUnreachable.
//   - Anything else: Unknown, retryable.
//
// The severity is the type's DefaultSeverity and RetryAfter is taken from the
// server's Retry-After when it sent one.
func Classify(err error) *TMCError {
	if err == nil {
		return nil
	}
	var existing *TMCError
	if errors.As(err, &existing) && existing != nil {
		return existing
	}

	errType := classifyType(err)
	classified := NewTMCError(errType, err, "", errType.DefaultSeverity())
	if seconds, ok := apierrors.SuggestsClientDelay(err); ok && seconds > 0 {
		classified.RetryAfter = time.Duration(seconds) * time.Second
	}
	if errors.Is(err, context.Canceled) {
		classified.Retryable = false
	}
	return classified
}

// IsRetryable reports whether err, once classified, is retryable. It is false for nil.
func IsRetryable(err error) bool {
	classified := Classify(err)
	return classified != nil && classified.Retryable
}

// TypeOf returns the TMCErrorType of err once classified, or "" for nil.
func TypeOf(err error) TMCErrorType {
	classified := Classify(err)
	if classified == nil {
		return ""
	}
	return classified.Type
}

func classifyType(err error) TMCErrorType {
	switch {
	case errors.Is(err, context.Canceled):
		return TMCErrorTypeUnknown
	case errors.Is(err, context.DeadlineExceeded):
		return TMCErrorTypeTimeout
	}

	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return classifyAPIStatus(err, status)
	}
	if meta.IsNoMatchError(err) {
		return TMCErrorTypeAPINotAvailable
	}

	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return TMCErrorTypeTimeout
	}
	if isConnectionError(err) {
		return TMCErrorTypeClusterUnreachable
	}
	return TMCErrorTypeUnknown
}

// Fragments of the messages the apiserver produces for admission denials and
// quota rejections. They have been stable for many releases and there is no
// structured field that carries the same information.
const (
	webhookDeniedFragment      = "admission webhook"
	webhookDeniedVerb          = "denied the request"
	policyDeniedFragment       = "ValidatingAdmissionPolicy '"
	policyDeniedVerb           = "denied request"
	quotaExceededFragment      = "exceeded quota"
	quotaUnknownFragment       = "status unknown for quota"
	apiNotFoundMessage         = "the server could not find the requested resource"
	namespaceTerminatingCause  = "NamespaceTerminating"
	namespaceTerminatingReason = "because it is being terminated"
)

// classifyAPIStatus maps a Kubernetes API status error:
//
//   - admission webhook / ValidatingAdmissionPolicy denial (any code, since a
//     webhook may answer 400 and a policy 422): AdmissionDenied.
//   - 429: RateLimited.
//   - Conflict, AlreadyExists, and Forbidden because the namespace is being
//     terminated: ResourceConflict, retryable.
//   - Invalid, BadRequest, RequestEntityTooLarge: InvalidResource.
//   - Forbidden with "exceeded quota" or "status unknown for quota": QuotaExceeded;
//     other Forbidden: Forbidden.
//   - Unauthorized: Unauthorized.
//   - NotFound for a path the server does not serve: APINotAvailable; other
//     NotFound: NotFound.
//   - ServerTimeout, Timeout (504): Timeout.
//   - ServiceUnavailable (503), and a 5xx whose body was not a Kubernetes
//     Status (a proxy or load balancer answered instead of the apiserver):
//     ClusterUnreachable, so that they count towards the circuit breaker.
//   - InternalError (500) and everything else: Unknown, retryable. The
//     apiserver did answer, so the cluster is reachable; a 500 is usually a
//     webhook or storage hiccup of a single request.
func classifyAPIStatus(err error, status apierrors.APIStatus) TMCErrorType {
	switch {
	case isAdmissionDenial(status):
		return TMCErrorTypeAdmissionDenied
	case apierrors.IsTooManyRequests(err):
		return TMCErrorTypeRateLimited
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return TMCErrorTypeResourceConflict
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err):
		return TMCErrorTypeInvalidResource
	case apierrors.IsForbidden(err):
		switch {
		case statusMentions(status, quotaExceededFragment), statusMentions(status, quotaUnknownFragment):
			// A quota whose usage is not computed yet rejects like an exceeded one and clears
			// by itself, so it is retried the same way.
			return TMCErrorTypeQuotaExceeded
		case apierrors.HasStatusCause(err, namespaceTerminatingCause), statusMentions(status, namespaceTerminatingReason):
			return TMCErrorTypeResourceConflict
		default:
			return TMCErrorTypeForbidden
		}
	case apierrors.IsUnauthorized(err):
		return TMCErrorTypeUnauthorized
	case apierrors.IsNotFound(err):
		if statusMentions(status, apiNotFoundMessage) {
			return TMCErrorTypeAPINotAvailable
		}
		return TMCErrorTypeNotFound
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err):
		return TMCErrorTypeTimeout
	case apierrors.IsServiceUnavailable(err):
		return TMCErrorTypeClusterUnreachable
	case apierrors.IsUnexpectedServerError(err) && status.Status().Code >= 500:
		return TMCErrorTypeClusterUnreachable
	default:
		return TMCErrorTypeUnknown
	}
}

func isAdmissionDenial(status apierrors.APIStatus) bool {
	return (statusMentions(status, webhookDeniedFragment) && statusMentions(status, webhookDeniedVerb)) ||
		(statusMentions(status, policyDeniedFragment) && statusMentions(status, policyDeniedVerb))
}

// statusMentions reports whether the status message or one of its causes
// contains fragment.
func statusMentions(status apierrors.APIStatus, fragment string) bool {
	s := status.Status()
	if strings.Contains(s.Message, fragment) {
		return true
	}
	if s.Details == nil {
		return false
	}
	for _, cause := range s.Details.Causes {
		if strings.Contains(cause.Message, fragment) {
			return true
		}
	}
	return false
}

func isConnectionError(err error) bool {
	for _, sentinel := range []error{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EPIPE,
		io.EOF, io.ErrUnexpectedEOF, net.ErrClosed,
	} {
		if errors.Is(err, sentinel) {
			return true
		}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}
