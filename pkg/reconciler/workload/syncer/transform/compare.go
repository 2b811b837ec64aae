package transform

import (
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
)

// The comparisons below work on JSON-shaped values as unstructured objects hold them:
// map[string]interface{}, []interface{}, string, bool, int64, float64 and nil. They are
// semantic where the apiserver rewrites values without changing their meaning: numbers are
// compared numerically (int64 vs float64), and strings that are both quantities are compared
// as quantities ("0.5" is stored as "500m"; a number 1 becomes the string "1").

// subset reports whether desired is a semantic subset of live, and if not the first path
// (in sorted key order) where they differ. Maps: every key of desired must be in live with a
// subset value; lists: same length, elementwise subset; scalars: equal. A zero value in
// desired (empty map, list or string, false, 0, null) matches an absent field in live,
// because built-in types omit empty fields when storing them.
func subset(desired, live interface{}, path string) (bool, string) {
	switch d := desired.(type) {
	case nil:
		// Apply treats an explicit null as "not set": it owns nothing to compare.
		return true, ""
	case map[string]interface{}:
		l, ok := live.(map[string]interface{})
		if !ok {
			return live == nil && len(d) == 0, path
		}
		for _, k := range sortedKeys(d) {
			lv, found := l[k]
			if !found {
				if isZero(d[k]) {
					continue
				}
				return false, joinPath(path, k)
			}
			if ok, p := subset(d[k], lv, joinPath(path, k)); !ok {
				return false, p
			}
		}
		return true, ""
	case []interface{}:
		l, ok := live.([]interface{})
		if !ok {
			return live == nil && len(d) == 0, path
		}
		if len(d) != len(l) {
			return false, path
		}
		for i := range d {
			if ok, p := subset(d[i], l[i], path+"["+strconv.Itoa(i)+"]"); !ok {
				return false, p
			}
		}
		return true, ""
	default:
		return scalarEqual(desired, live), path
	}
}

// equal reports whether a and b are semantically equal, with the same rules as subset but
// in both directions: an absent map or list equals an empty one, nothing else is ignored.
func equal(a, b interface{}) bool {
	switch av := a.(type) {
	case nil:
		return b == nil || isEmptyCollection(b)
	case map[string]interface{}:
		bv, ok := b.(map[string]interface{})
		if !ok {
			return len(av) == 0 && b == nil
		}
		if len(av) != len(bv) {
			return false
		}
		for k, v := range av {
			w, found := bv[k]
			if !found || !equal(v, w) {
				return false
			}
		}
		return true
	case []interface{}:
		bv, ok := b.([]interface{})
		if !ok {
			return len(av) == 0 && b == nil
		}
		if len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !equal(av[i], bv[i]) {
				return false
			}
		}
		return true
	default:
		return scalarEqual(a, b)
	}
}

// scalarEqual compares two non-collection values.
func scalarEqual(a, b interface{}) bool {
	if an, ok := toNumber(a); ok {
		if bn, ok := toNumber(b); ok {
			return an.equal(bn)
		}
		if bs, ok := b.(string); ok {
			return quantityEqual(an.quantity(), bs)
		}
		return false
	}
	if as, ok := a.(string); ok {
		if bs, ok := b.(string); ok {
			if as == bs {
				return true
			}
			q, err := resource.ParseQuantity(as)
			return err == nil && quantityEqual(&q, bs)
		}
		if bn, ok := toNumber(b); ok {
			return quantityEqual(bn.quantity(), as)
		}
		return false
	}
	return reflect.DeepEqual(a, b)
}

// quantityEqual reports whether s parses as a quantity equal to q (nil q never matches).
func quantityEqual(q *resource.Quantity, s string) bool {
	if q == nil {
		return false
	}
	other, err := resource.ParseQuantity(s)
	return err == nil && q.Cmp(other) == 0
}

// number is an int64 or a float64.
type number struct {
	i       int64
	f       float64
	isFloat bool
}

func toNumber(v interface{}) (number, bool) {
	switch n := v.(type) {
	case int64:
		return number{i: n}, true
	case int:
		return number{i: int64(n)}, true
	case int32:
		return number{i: int64(n)}, true
	case float64:
		return number{f: n, isFloat: true}, true
	case float32:
		return number{f: float64(n), isFloat: true}, true
	}
	return number{}, false
}

func (n number) equal(o number) bool {
	switch {
	case !n.isFloat && !o.isFloat:
		return n.i == o.i
	case n.isFloat && o.isFloat:
		return n.f == o.f
	case n.isFloat:
		return floatEqualsInt(n.f, o.i)
	default:
		return floatEqualsInt(o.f, n.i)
	}
}

// floatEqualsInt compares exactly, without rounding i to a float.
func floatEqualsInt(f float64, i int64) bool {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return false
	}
	return int64(f) == i
}

// quantity returns n as a quantity, or nil if it cannot be one (NaN, infinities).
func (n number) quantity() *resource.Quantity {
	if !n.isFloat {
		return resource.NewQuantity(n.i, resource.DecimalSI)
	}
	q, err := resource.ParseQuantity(strconv.FormatFloat(n.f, 'f', -1, 64))
	if err != nil {
		return nil
	}
	return &q
}

// isZero reports whether v is a zero value that a typed apiserver omits when storing it.
func isZero(v interface{}) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]interface{}:
		return len(x) == 0
	case []interface{}:
		return len(x) == 0
	case string:
		return x == ""
	case bool:
		return !x
	}
	if n, ok := toNumber(v); ok {
		return n.i == 0 && n.f == 0
	}
	return false
}

func isEmptyCollection(v interface{}) bool {
	switch x := v.(type) {
	case map[string]interface{}:
		return len(x) == 0
	case []interface{}:
		return len(x) == 0
	}
	return false
}

func sortedKeys(m map[string]interface{}) []string {
	return slices.Sorted(maps.Keys(m))
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
