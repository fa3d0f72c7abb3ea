package verifier

// CacheLen exposes the cache size to tests.
func CacheLen(v *Verifier) int { return v.cache.Len() }
