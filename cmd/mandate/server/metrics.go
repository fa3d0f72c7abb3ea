package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/store/postgres"
)

// PathMetrics is where serve exposes Prometheus metrics.
const PathMetrics = "/metrics"

// metrics is the server's Prometheus registry. Labels come from fixed sets
// (route patterns, grant names, status codes, OAuth error codes): never a
// client id, a scope or anything else a request chooses.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(st Store, svc *delegation.Service, now func() time.Time) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_http_requests_total",
			Help: "Answered requests by route, grant (token endpoint), HTTP status and OAuth error code (empty on success).",
		}, []string{"route", "grant", "status", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mandate_http_request_duration_seconds",
			Help:    "Time to answer, by route and grant (long polls of the revocation feed included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30},
		}, []string{"route", "grant"}),
	}
	m.reg.MustRegister(m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_feed_subscribers",
			Help: "Revocation-feed long polls open now."}, func() float64 { return float64(svc.FeedSubscribers()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_verified_cache_entries",
			Help: "Tokens remembered as verified at the token endpoint."}, func() float64 { n, _ := svc.VerifiedCacheStats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_verified_cache_bytes",
			Help: "Memory of the verified-token cache, as it counts it (bounded by cache.max_bytes)."}, func() float64 { _, b := svc.VerifiedCacheStats(); return float64(b) }),
	)
	switch db := st.(type) {
	case *bolt.DB:
		m.reg.MustRegister(&storeCollector{db: db, now: now})
	case *postgres.DB:
		// The counts of records bbolt reads from its file cost PostgreSQL a
		// scan of whole tables; the pool is what a replica knows cheaply
		// (the database's own statistics are PostgreSQL's exporters' job).
		m.reg.MustRegister(poolCollector{db: db})
	}
	return m
}

// poolCollector exposes a PostgreSQL store's connection pool.
type poolCollector struct{ db *postgres.DB }

var poolGauges = []struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(postgres.PoolStats) float64
}{
	{prometheus.NewDesc("mandate_store_pool_connections", "Connections to PostgreSQL open now (idle and in use).", nil, nil), prometheus.GaugeValue,
		func(s postgres.PoolStats) float64 { return float64(s.Total) }},
	{prometheus.NewDesc("mandate_store_pool_idle_connections", "Connections to PostgreSQL open and idle.", nil, nil), prometheus.GaugeValue,
		func(s postgres.PoolStats) float64 { return float64(s.Idle) }},
	{prometheus.NewDesc("mandate_store_pool_acquired_connections", "Connections to PostgreSQL in use now.", nil, nil), prometheus.GaugeValue,
		func(s postgres.PoolStats) float64 { return float64(s.Acquired) }},
	{prometheus.NewDesc("mandate_store_pool_max_connections", "The most connections to PostgreSQL this replica opens (pool_max_conns).", nil, nil), prometheus.GaugeValue,
		func(s postgres.PoolStats) float64 { return float64(s.Max) }},
	{prometheus.NewDesc("mandate_store_pool_acquires_total", "Connections taken from the pool.", nil, nil), prometheus.CounterValue,
		func(s postgres.PoolStats) float64 { return float64(s.Acquires) }},
	{prometheus.NewDesc("mandate_store_pool_empty_acquires_total", "Connections taken from the pool that had to be waited for (none idle).", nil, nil), prometheus.CounterValue,
		func(s postgres.PoolStats) float64 { return float64(s.EmptyAcquires) }},
	{prometheus.NewDesc("mandate_store_pool_acquire_seconds_total", "Time spent taking connections from the pool.", nil, nil), prometheus.CounterValue,
		func(s postgres.PoolStats) float64 { return s.AcquireWait.Seconds() }},
}

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range poolGauges {
		ch <- g.desc
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.PoolStats()
	for _, g := range poolGauges {
		ch <- prometheus.MustNewConstMetric(g.desc, g.kind, g.value(s))
	}
}

// observe records one answered request.
func (m *metrics) observe(o httpapi.Observation) {
	m.requests.WithLabelValues(o.Route, o.Grant, strconv.Itoa(o.Status), o.Code).Inc()
	m.latency.WithLabelValues(o.Route, o.Grant).Observe(o.Duration.Seconds())
}

// storeCollector exposes a bbolt store's gauges from one Stats call, reused for
// storeStatsTTL: a scrape costs at most one walk of the store's pages,
// however often /metrics is asked.
type storeCollector struct {
	db  *bolt.DB
	now func() time.Time

	mu    sync.Mutex
	at    time.Time
	stats bolt.Stats
	err   error
}

// storeStatsTTL is how long one reading of the store's gauges is reused.
const storeStatsTTL = 15 * time.Second

var storeGauges = []struct {
	desc *prometheus.Desc
	pick func(bolt.Stats) float64
}{
	{prometheus.NewDesc("mandate_tokens_unexpired", "Token records not yet expired (revoked ones included).", nil, nil), func(s bolt.Stats) float64 { return float64(s.Unexpired) }},
	{prometheus.NewDesc("mandate_token_records", "Token records stored, expired ones within tokens.retention included.", nil, nil), func(s bolt.Stats) float64 { return float64(s.Tokens) }},
	{prometheus.NewDesc("mandate_revocations", "Revocation entries in force (kept until their token expires).", nil, nil), func(s bolt.Stats) float64 { return float64(s.Revocations) }},
	{prometheus.NewDesc("mandate_store_file_bytes", "Size of the bbolt data file in use.", nil, nil), func(s bolt.Stats) float64 { return float64(s.FileBytes) }},
	{prometheus.NewDesc("mandate_store_token_bytes", "Bytes of the data file holding token records and their indexes.", nil, nil), func(s bolt.Stats) float64 { return float64(s.TokenBytes) }},
	{prometheus.NewDesc("mandate_store_audit_bytes", "Bytes of the data file holding the audit trail (kept for audit.retention).", nil, nil), func(s bolt.Stats) float64 { return float64(s.AuditBytes) }},
	{prometheus.NewDesc("mandate_audit_records", "Records in the audit trail.", nil, nil), func(s bolt.Stats) float64 { return float64(s.AuditRecords) }},
	{prometheus.NewDesc("mandate_store_free_pages", "Pages of the data file free for reuse.", nil, nil), func(s bolt.Stats) float64 { return float64(s.FreePages) }},
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range storeGauges {
		ch <- g.desc
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if now := time.Now(); c.at.IsZero() || now.Sub(c.at) > storeStatsTTL {
		c.stats, c.err = c.db.Stats(c.now())
		c.at = now
	}
	s, err := c.stats, c.err
	c.mu.Unlock()
	for _, g := range storeGauges {
		if err != nil {
			ch <- prometheus.NewInvalidMetric(g.desc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, g.pick(s))
	}
}
