package postgres

// SessionParams is what Mandate's sessions on dsn are started with (the
// runtime parameters parseDSN sets), for tests.
func SessionParams(dsn string) (map[string]string, error) {
	cfg, err := parseDSN(dsn, false)
	if err != nil {
		return nil, err
	}
	return cfg.ConnConfig.RuntimeParams, nil
}
