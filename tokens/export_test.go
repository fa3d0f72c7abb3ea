package tokens

// ExportSigningKeyForTest exposes the current private key to this package's
// tests, which need to sign malformed tokens with the real key.
func ExportSigningKeyForTest(r *KeyRing) (any, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.current == nil {
		return nil, false
	}
	return r.current.priv, true
}

// ExportDPoPPrivateForTest exposes a DPoP key's private half to tests that
// build proofs carrying private material.
func ExportDPoPPrivateForTest(k *DPoPKey) any { return k.priv }
