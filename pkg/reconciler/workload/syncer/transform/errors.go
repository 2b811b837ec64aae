package transform

import (
	"errors"
	"fmt"
)

// ErrFiltered is matched (errors.Is) by the error Chain.Down returns when a filter or a
// transformer refuses an object. The object is simply not synced; it is not a failure.
var ErrFiltered = errors.New("object filtered out")

// ErrInvalidInput is matched (errors.Is) by errors caused by the user's input on the
// upstream object, such as an invalid spec-diff patch. Retrying cannot fix them: the
// caller reports them (Event, InvalidResource) and waits for the object to change.
var ErrInvalidInput = errors.New("invalid input")

// FilteredError says which filter (or transformer) refused an object and why.
type FilteredError struct {
	// Filter is the Name() of the filter or transformer that refused the object.
	Filter string
	// Reason is a short human-readable explanation, for logs and Events.
	Reason string
}

// Error implements error.
func (e *FilteredError) Error() string {
	return fmt.Sprintf("object filtered out by %s: %s", e.Filter, e.Reason)
}

// Is makes errors.Is(err, ErrFiltered) true.
func (e *FilteredError) Is(target error) bool { return target == ErrFiltered }

// InvalidInputError reports an upstream annotation whose value the user must fix.
type InvalidInputError struct {
	// Annotation is the full key of the offending annotation.
	Annotation string
	// Reason says what is wrong, in words the user can act on.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

// Error implements error.
func (e *InvalidInputError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("invalid annotation %q: %s: %v", e.Annotation, e.Reason, e.Err)
	}
	return fmt.Sprintf("invalid annotation %q: %s", e.Annotation, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidInput) true.
func (e *InvalidInputError) Is(target error) bool { return target == ErrInvalidInput }

// Unwrap returns the underlying error.
func (e *InvalidInputError) Unwrap() error { return e.Err }

// IsInvalidInput reports whether err (or an error it wraps) is the user's fault.
func IsInvalidInput(err error) bool { return errors.Is(err, ErrInvalidInput) }

// IsFiltered reports whether err (or an error it wraps) means the object is not synced.
func IsFiltered(err error) bool { return errors.Is(err, ErrFiltered) }

func invalidInput(annotation, reason string, err error) *InvalidInputError {
	return &InvalidInputError{Annotation: annotation, Reason: reason, Err: err}
}
