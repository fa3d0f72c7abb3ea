package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/store/bolt"
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

func newMetrics(db *bolt.DB, svc *delegation.Service, now func() time.Time) *metrics {
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
	stats := func(pick func(bolt.Stats) float64) func() float64 {
		return func() float64 {
			s, err := db.Stats(now())
			if err != nil {
				return -1
			}
			return pick(s)
		}
	}
	m.reg.MustRegister(m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_tokens_unexpired",
			Help: "Token records not yet expired (revoked ones included)."}, stats(func(s bolt.Stats) float64 { return float64(s.Unexpired) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_token_records",
			Help: "Token records stored, expired ones within tokens.retention included."}, stats(func(s bolt.Stats) float64 { return float64(s.Tokens) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_revocations",
			Help: "Revocation entries in force (kept until their token expires)."}, stats(func(s bolt.Stats) float64 { return float64(s.Revocations) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_store_file_bytes",
			Help: "Size of the bbolt data file."}, stats(func(s bolt.Stats) float64 { return float64(s.FileBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_store_token_bytes",
			Help: "Bytes of the data file holding token records and their indexes."}, stats(func(s bolt.Stats) float64 { return float64(s.TokenBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_store_audit_bytes",
			Help: "Bytes of the data file holding the audit trail (kept for audit.retention)."}, stats(func(s bolt.Stats) float64 { return float64(s.AuditBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_audit_records",
			Help: "Records in the audit trail."}, stats(func(s bolt.Stats) float64 { return float64(s.AuditRecords) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_store_free_pages",
			Help: "Pages of the data file free for reuse."}, stats(func(s bolt.Stats) float64 { return float64(s.FreePages) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mandate_feed_subscribers",
			Help: "Revocation-feed long polls open now."}, func() float64 { return float64(svc.FeedSubscribers()) }),
	)
	return m
}

// observe records one answered request.
func (m *metrics) observe(o httpapi.Observation) {
	m.requests.WithLabelValues(o.Route, o.Grant, strconv.Itoa(o.Status), o.Code).Inc()
	m.latency.WithLabelValues(o.Route, o.Grant).Observe(o.Duration.Seconds())
}
