package tmc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	deploymentsResource = schema.GroupResource{Group: "apps", Resource: "deployments"}
	widgetsResource     = schema.GroupResource{Group: "example.com", Resource: "widgets"}
)

// closedLoopbackAddr returns the address of a loopback port nothing listens on.
func closedLoopbackAddr(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	addr := listener.Addr().String()
	if err := listener.Close(); err != nil {
		t.Fatalf("failed to close listener: %v", err)
	}
	return addr
}

// connectionRefusedError dials a closed loopback port.
func connectionRefusedError(t *testing.T) error {
	t.Helper()
	conn, err := net.DialTimeout("tcp", closedLoopbackAddr(t), 5*time.Second)
	if err == nil {
		_ = conn.Close()
		t.Fatal("expected dialing a closed port to fail")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("expected ECONNREFUSED, got %#v", err)
	}
	return err
}

// httpConnectionRefusedError makes an HTTP request to a closed loopback port,
// as client-go would, and returns the resulting *url.Error.
func httpConnectionRefusedError(t *testing.T) error {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + closedLoopbackAddr(t) + "/api")
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("expected request to a closed port to fail")
	}
	var urlErr *url.Error
	if !errors.As(err, &urlErr) {
		t.Fatalf("expected *url.Error, got %#v", err)
	}
	return err
}

// readTimeoutError reads from a connection whose deadline has passed.
func readTimeoutError(t *testing.T) error {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	defer func() { _ = listener.Close() }()
	conn, err := net.DialTimeout("tcp", listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("failed to dial: %v", err)
	}
	defer func() { _ = conn.Close() }()
	if err := conn.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatalf("failed to set deadline: %v", err)
	}
	_, err = conn.Read(make([]byte, 1))
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("expected a net timeout, got %#v", err)
	}
	return err
}

// webhookDenied builds the error the apiserver returns when a validating
// webhook rejects a request (see ToStatusErr in k8s.io/apiserver).
func webhookDenied(code int32, reason metav1.StatusReason) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    code,
		Reason:  reason,
		Message: `admission webhook "validate.example.com" denied the request: replicas must not exceed 10`,
	}}
}

// policyDenied builds the error the apiserver returns when a
// ValidatingAdmissionPolicy rejects a request: a Forbidden error whose reason
// and code are replaced by the policy's (Invalid by default).
func policyDenied() error {
	message := "ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-binding' denied request: failed expression: object.spec.replicas <= 5"
	err := apierrors.NewForbidden(deploymentsResource, "web", errors.New(message))
	err.ErrStatus.Reason = metav1.StatusReasonInvalid
	err.ErrStatus.Code = 422
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Message: message})
	return err
}

// namespaceTerminating builds the NamespaceLifecycle admission error.
func namespaceTerminating() error {
	err := apierrors.NewForbidden(deploymentsResource, "web",
		errors.New("unable to create new content in namespace team-a because it is being terminated"))
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
		Type:    "NamespaceTerminating",
		Message: "namespace team-a is being terminated",
		Field:   "metadata.namespace",
	})
	return err
}

func TestClassify(t *testing.T) {
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web", field.ErrorList{
		field.Invalid(field.NewPath("spec", "replicas"), -1, "must be greater than or equal to 0"),
		field.Required(field.NewPath("spec", "selector"), ""),
	})
	quota := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web-1",
		errors.New("exceeded quota: compute-resources, requested: limits.cpu=2, used: limits.cpu=3, limited: limits.cpu=4"))
	quotaUnknown := apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "svc-b",
		errors.New("status unknown for quota: one-service, resources: services"))
	apiPathNotFound := &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    404,
		Reason:  metav1.StatusReasonNotFound,
		Message: "the server could not find the requested resource",
		Details: &metav1.StatusDetails{},
	}}
	refused := connectionRefusedError(t)
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	unreachable := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}

	tests := []struct {
		name           string
		err            error
		wantType       TMCErrorType
		wantRetryable  bool
		wantRetryAfter time.Duration
	}{
		{"conflict", apierrors.NewConflict(deploymentsResource, "web", errors.New("the object has been modified")), TMCErrorTypeResourceConflict, true, 0},
		{"already exists", apierrors.NewAlreadyExists(deploymentsResource, "web"), TMCErrorTypeResourceConflict, true, 0},
		{"namespace terminating", namespaceTerminating(), TMCErrorTypeResourceConflict, true, 0},
		{"invalid", invalid, TMCErrorTypeInvalidResource, false, 0},
		{"bad request", apierrors.NewBadRequest("the object provided is unrecognized"), TMCErrorTypeInvalidResource, false, 0},
		{"request entity too large", apierrors.NewRequestEntityTooLargeError("limit is 3145728"), TMCErrorTypeInvalidResource, false, 0},
		{"forbidden by RBAC", apierrors.NewForbidden(deploymentsResource, "web", errors.New(`User "system:serviceaccount:tmc:syncer" cannot update resource "deployments"`)), TMCErrorTypeForbidden, false, 0},
		{"webhook denial 403", webhookDenied(403, metav1.StatusReasonForbidden), TMCErrorTypeAdmissionDenied, false, 0},
		{"webhook denial without code", webhookDenied(400, ""), TMCErrorTypeAdmissionDenied, false, 0},
		{"validating admission policy denial", policyDenied(), TMCErrorTypeAdmissionDenied, false, 0},
		{"quota exceeded", quota, TMCErrorTypeQuotaExceeded, true, 0},
		{"quota not computed yet", quotaUnknown, TMCErrorTypeQuotaExceeded, true, 0},
		{"unauthorized", apierrors.NewUnauthorized("token has expired"), TMCErrorTypeUnauthorized, false, 0},
		{"not found", apierrors.NewNotFound(deploymentsResource, "web"), TMCErrorTypeNotFound, false, 0},
		{"resource type not served", apiPathNotFound, TMCErrorTypeAPINotAvailable, false, 0},
		{"resource type not served, generic response", apierrors.NewGenericServerResponse(404, "GET", widgetsResource, "", "", 0, false), TMCErrorTypeAPINotAvailable, false, 0},
		{"no kind match", &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "example.com", Kind: "Widget"}, SearchedVersions: []string{"v1"}}, TMCErrorTypeAPINotAvailable, false, 0},
		{"no resource match", fmt.Errorf("failed to map widgets: %w", &meta.NoResourceMatchError{PartialResource: widgetsResource.WithVersion("v1")}), TMCErrorTypeAPINotAvailable, false, 0},
		{"too many requests", apierrors.NewTooManyRequests("slow down", 3), TMCErrorTypeRateLimited, true, 3 * time.Second},
		{"too many requests without delay", apierrors.NewTooManyRequestsError("slow down"), TMCErrorTypeRateLimited, true, 0},
		{"server timeout", apierrors.NewServerTimeout(deploymentsResource, "update", 2), TMCErrorTypeTimeout, true, 2 * time.Second},
		{"gateway timeout", apierrors.NewTimeoutError("request did not complete within 60s", 0), TMCErrorTypeTimeout, true, 0},
		{"service unavailable", apierrors.NewServiceUnavailable("apiserver is shutting down"), TMCErrorTypeClusterUnreachable, true, 0},
		{"bad gateway from a proxy", apierrors.NewGenericServerResponse(502, "GET", deploymentsResource, "web", "<html>502 Bad Gateway</html>", 0, true), TMCErrorTypeClusterUnreachable, true, 0},
		{"internal error", apierrors.NewInternalError(errors.New("etcdserver: leader changed")), TMCErrorTypeUnknown, true, 0},
		{"resource expired", apierrors.NewResourceExpired("too old resource version"), TMCErrorTypeUnknown, true, 0},
		{"connection refused", refused, TMCErrorTypeClusterUnreachable, true, 0},
		{"connection refused over HTTP", httpConnectionRefusedError(t), TMCErrorTypeClusterUnreachable, true, 0},
		{"connection refused wrapped", fmt.Errorf("failed to list deployments: %w", &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/apis/apps/v1/deployments", Err: refused}), TMCErrorTypeClusterUnreachable, true, 0},
		{"connection reset", reset, TMCErrorTypeClusterUnreachable, true, 0},
		{"host unreachable", unreachable, TMCErrorTypeClusterUnreachable, true, 0},
		{"dns failure", &net.DNSError{Err: "no such host", Name: "api.cluster.invalid", IsNotFound: true}, TMCErrorTypeClusterUnreachable, true, 0},
		{"eof", &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api", Err: io.EOF}, TMCErrorTypeClusterUnreachable, true, 0},
		{"unexpected eof", fmt.Errorf("failed to decode watch event: %w", io.ErrUnexpectedEOF), TMCErrorTypeClusterUnreachable, true, 0},
		{"closed connection", fmt.Errorf("failed to write: %w", net.ErrClosed), TMCErrorTypeClusterUnreachable, true, 0},
		{"net read timeout", readTimeoutError(t), TMCErrorTypeTimeout, true, 0},
		{"deadline exceeded", context.DeadlineExceeded, TMCErrorTypeTimeout, true, 0},
		{"deadline exceeded wrapped", fmt.Errorf("failed to apply deployment: %w", context.DeadlineExceeded), TMCErrorTypeTimeout, true, 0},
		{"deadline exceeded in url error", &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api", Err: context.DeadlineExceeded}, TMCErrorTypeTimeout, true, 0},
		{"canceled", context.Canceled, TMCErrorTypeUnknown, false, 0},
		{"canceled wrapped", fmt.Errorf("failed to list: %w", &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api", Err: context.Canceled}), TMCErrorTypeUnknown, false, 0},
		{"anything else", errors.New("something odd happened"), TMCErrorTypeUnknown, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.err)
			if got == nil {
				t.Fatal("Classify returned nil")
			}
			if got.Type != tc.wantType {
				t.Errorf("Type = %q, want %q (error: %v)", got.Type, tc.wantType, tc.err)
			}
			if got.Retryable != tc.wantRetryable {
				t.Errorf("Retryable = %v, want %v", got.Retryable, tc.wantRetryable)
			}
			if got.RetryAfter != tc.wantRetryAfter {
				t.Errorf("RetryAfter = %v, want %v", got.RetryAfter, tc.wantRetryAfter)
			}
			if got.Severity != tc.wantType.DefaultSeverity() {
				t.Errorf("Severity = %q, want %q", got.Severity, tc.wantType.DefaultSeverity())
			}
			if got.Cause != tc.err { //nolint:errorlint // The cause must be the very same value, not an equivalent one.
				t.Errorf("Cause = %v, want the original error", got.Cause)
			}
			if !errors.Is(got, tc.err) {
				t.Error("errors.Is(classified, original) = false")
			}
			if got.Timestamp.IsZero() {
				t.Error("Timestamp is zero")
			}
			if TypeOf(tc.err) != tc.wantType {
				t.Errorf("TypeOf = %q, want %q", TypeOf(tc.err), tc.wantType)
			}
			if IsRetryable(tc.err) != tc.wantRetryable {
				t.Errorf("IsRetryable = %v, want %v", IsRetryable(tc.err), tc.wantRetryable)
			}
		})
	}
}

func TestClassifyNil(t *testing.T) {
	if got := Classify(nil); got != nil {
		t.Errorf("Classify(nil) = %v, want nil", got)
	}
	if IsRetryable(nil) {
		t.Error("IsRetryable(nil) = true")
	}
	if got := TypeOf(nil); got != "" {
		t.Errorf("TypeOf(nil) = %q, want empty", got)
	}
}

func TestClassifyReturnsExistingTMCError(t *testing.T) {
	inner := NewTMCError(TMCErrorTypeNamespaceCollision, errors.New(`namespace "team-a" is not owned by this syncer`),
		"Downstream namespace exists", TMCErrorSeverityMedium).WithCluster("east")
	wrapped := fmt.Errorf("failed to ensure namespace: %w", fmt.Errorf("sync: %w", inner))

	if got := Classify(wrapped); got != inner {
		t.Errorf("Classify returned %p (%v), want the wrapped TMCError %p", got, got, inner)
	}
	if TypeOf(wrapped) != TMCErrorTypeNamespaceCollision {
		t.Errorf("TypeOf = %q", TypeOf(wrapped))
	}
	if IsRetryable(wrapped) {
		t.Error("NamespaceCollision must not be retryable")
	}
}

func TestTMCErrorIsAndAs(t *testing.T) {
	conflict := apierrors.NewConflict(deploymentsResource, "web", errors.New("the object has been modified"))
	tmcErr := Classify(conflict).WithComponent("syncer").WithCluster("east")
	wrapped := fmt.Errorf("failed to sync deployment team-a/web: %w", fmt.Errorf("apply: %w", tmcErr))

	tests := []struct {
		name   string
		target error
		want   bool
	}{
		{"same type", &TMCError{Type: TMCErrorTypeResourceConflict}, true},
		{"other type", &TMCError{Type: TMCErrorTypeForbidden}, false},
		{"any TMC error", &TMCError{}, true},
		{"type and cluster", &TMCError{Type: TMCErrorTypeResourceConflict, Cluster: "east"}, true},
		{"type and other cluster", &TMCError{Type: TMCErrorTypeResourceConflict, Cluster: "west"}, false},
		{"component", &TMCError{Component: "syncer"}, true},
		{"severity", &TMCError{Severity: TMCErrorSeverityCritical}, false},
		{"typed nil", (*TMCError)(nil), false},
		{"the cause", conflict, true},
		{"unrelated", context.Canceled, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(wrapped, tc.target); got != tc.want {
				t.Errorf("errors.Is = %v, want %v", got, tc.want)
			}
		})
	}

	var asTMC *TMCError
	if !errors.As(wrapped, &asTMC) || asTMC != tmcErr {
		t.Errorf("errors.As(*TMCError) = %v", asTMC)
	}
	var asStatus *apierrors.StatusError
	if !errors.As(wrapped, &asStatus) || asStatus != conflict {
		t.Errorf("errors.As(*StatusError) = %v", asStatus)
	}
	if !apierrors.IsConflict(wrapped) {
		t.Error("apierrors.IsConflict does not see through the TMCError")
	}
	if !errors.Is(Classify(connectionRefusedError(t)), syscall.ECONNREFUSED) {
		t.Error("errors.Is(classified, ECONNREFUSED) = false")
	}
}

func TestTMCErrorError(t *testing.T) {
	cause := errors.New("connection refused")
	tests := []struct {
		name string
		err  *TMCError
		want string
	}{
		{
			name: "everything",
			err: NewTMCError(TMCErrorTypeClusterUnreachable, cause, "Failed to reach target cluster", TMCErrorSeverityHigh).
				WithComponent("syncer").WithOperation("apply").WithResource("deployments.apps team-a/web"),
			want: "ClusterUnreachable (syncer/apply deployments.apps team-a/web): Failed to reach target cluster: connection refused",
		},
		{
			name: "operation only",
			err:  NewTMCError(TMCErrorTypeTimeout, nil, "Heartbeat timed out", "").WithOperation("heartbeat"),
			want: "Timeout (heartbeat): Heartbeat timed out",
		},
		{
			name: "component only",
			err:  NewTMCError(TMCErrorTypeForbidden, cause, "", "").WithComponent("syncer"),
			want: "Forbidden (syncer): connection refused",
		},
		{
			name: "classified",
			err:  Classify(apierrors.NewNotFound(deploymentsResource, "web")),
			want: `NotFound: deployments.apps "web" not found`,
		},
		{
			name: "empty",
			err:  &TMCError{},
			want: "Unknown",
		},
		{
			name: "nil",
			err:  nil,
			want: "<nil>",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTMCErrorBuilders(t *testing.T) {
	err := NewTMCError(TMCErrorTypeResourceConflict, nil, "Resource conflict during sync", TMCErrorSeverityMedium)
	got := err.WithComponent("syncer").WithOperation("apply").WithResource("deployments.apps team-a/web").
		WithWorkspace("root:org:team-a").WithCluster("east")
	if got != err {
		t.Fatal("builders must return the same pointer")
	}
	want := TMCError{
		Type: TMCErrorTypeResourceConflict, Severity: TMCErrorSeverityMedium, Component: "syncer",
		Operation: "apply", Resource: "deployments.apps team-a/web", Workspace: "root:org:team-a",
		Cluster: "east", Message: "Resource conflict during sync", Retryable: true, Timestamp: err.Timestamp,
	}
	if *got != want {
		t.Errorf("got %+v, want %+v", *got, want)
	}

	var nilErr *TMCError
	if nilErr.WithComponent("c").WithOperation("o").WithResource("r").WithWorkspace("w").WithCluster("x") != nil {
		t.Error("builders on nil must return nil")
	}
	if nilErr.Unwrap() != nil || nilErr.Is(err) {
		t.Error("nil TMCError must unwrap to nil and match nothing")
	}
}

func TestNewTMCErrorDefaults(t *testing.T) {
	for _, errType := range AllTMCErrorTypes() {
		err := NewTMCError(errType, nil, "", "")
		if err.Retryable != errType.DefaultRetryable() {
			t.Errorf("%s: Retryable = %v, want %v", errType, err.Retryable, errType.DefaultRetryable())
		}
		if err.Severity != errType.DefaultSeverity() {
			t.Errorf("%s: Severity = %q, want %q", errType, err.Severity, errType.DefaultSeverity())
		}
	}
	if err := NewTMCError("", nil, "", TMCErrorSeverityLow); err.Type != TMCErrorTypeUnknown || err.Severity != TMCErrorSeverityLow {
		t.Errorf("empty type: got %+v", err)
	}
	if err := NewTMCError(TMCErrorTypeResourceConflict, nil, "", TMCErrorSeverityCritical); err.Severity != TMCErrorSeverityCritical {
		t.Errorf("explicit severity not kept: %q", err.Severity)
	}
}

func TestTMCErrorTypeDefaults(t *testing.T) {
	tests := []struct {
		errType    TMCErrorType
		severity   TMCErrorSeverity
		retryable  bool
		connection bool
	}{
		{TMCErrorTypeClusterUnreachable, TMCErrorSeverityHigh, true, true},
		{TMCErrorTypeResourceConflict, TMCErrorSeverityMedium, true, false},
		{TMCErrorTypeInvalidResource, TMCErrorSeverityMedium, false, false},
		{TMCErrorTypeForbidden, TMCErrorSeverityHigh, false, false},
		{TMCErrorTypeUnauthorized, TMCErrorSeverityCritical, false, false},
		{TMCErrorTypeNotFound, TMCErrorSeverityLow, false, false},
		{TMCErrorTypeAPINotAvailable, TMCErrorSeverityHigh, false, false},
		{TMCErrorTypeQuotaExceeded, TMCErrorSeverityMedium, true, false},
		{TMCErrorTypeAdmissionDenied, TMCErrorSeverityMedium, false, false},
		{TMCErrorTypeTimeout, TMCErrorSeverityMedium, true, true},
		{TMCErrorTypeRateLimited, TMCErrorSeverityLow, true, false},
		{TMCErrorTypeNamespaceCollision, TMCErrorSeverityMedium, false, false},
		{TMCErrorTypeUpstreamLost, TMCErrorSeverityHigh, false, false},
		{TMCErrorTypeUnknown, TMCErrorSeverityMedium, true, false},
		{"SomethingNew", TMCErrorSeverityMedium, true, false},
	}
	for _, tc := range tests {
		t.Run(string(tc.errType), func(t *testing.T) {
			if got := tc.errType.DefaultSeverity(); got != tc.severity {
				t.Errorf("DefaultSeverity = %q, want %q", got, tc.severity)
			}
			if got := tc.errType.DefaultRetryable(); got != tc.retryable {
				t.Errorf("DefaultRetryable = %v, want %v", got, tc.retryable)
			}
			if got := tc.errType.IsConnectionFailure(); got != tc.connection {
				t.Errorf("IsConnectionFailure = %v, want %v", got, tc.connection)
			}
		})
	}
}

func TestAllTMCErrorTypes(t *testing.T) {
	types := AllTMCErrorTypes()
	if len(types) != 14 {
		t.Fatalf("got %d types, want 14", len(types))
	}
	seen := map[TMCErrorType]bool{}
	for _, errType := range types {
		if seen[errType] {
			t.Errorf("duplicate type %q", errType)
		}
		seen[errType] = true
		if !errType.IsKnown() {
			t.Errorf("%q is not known", errType)
		}
	}
	if types[0] != TMCErrorTypeClusterUnreachable || types[len(types)-1] != TMCErrorTypeUnknown {
		t.Errorf("unstable order: %v", types)
	}
	types[0] = "Mutated"
	if AllTMCErrorTypes()[0] != TMCErrorTypeClusterUnreachable {
		t.Error("mutating the returned slice changed the next result")
	}
	if TMCErrorType("Mutated").IsKnown() {
		t.Error("unrecognised type reported as known")
	}
}
