//! Metrics in Prometheus's text format (the `prometheus` crate): sessions, statements,
//! decisions, pre-check latency, upstream connection errors, policy reloads.
//!
//! Owns: the registry and the metric names. Does not own: serving them (`admin`).

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub sessions_open: IntGauge,
    pub sessions_total: IntCounter,
    pub statements_total: IntCounter,
    pub decisions_total: IntCounterVec,
    pub precheck_seconds: Histogram,
    pub upstream_connect_errors_total: IntCounter,
    pub policy_reloads_total: IntCounterVec,
    pub policy_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("blastwall".into()), None)?;
        let m = Metrics {
            sessions_open: IntGauge::new("sessions_open", "Client sessions open now")?,
            sessions_total: IntCounter::new("sessions_total", "Client sessions accepted")?,
            statements_total: IntCounter::new(
                "statements_total",
                "Query, Parse and FunctionCall messages relayed or refused",
            )?,
            decisions_total: IntCounterVec::new(
                Opts::new("decisions_total", "Guarded decisions by rule, mode and outcome"),
                &["rule", "mode", "outcome"],
            )?,
            precheck_seconds: Histogram::with_opts(
                HistogramOpts::new("precheck_seconds", "Time a pre-check added to a statement").buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
                ]),
            )?,
            upstream_connect_errors_total: IntCounter::new(
                "upstream_connect_errors_total",
                "Failed connections to the server",
            )?,
            policy_reloads_total: IntCounterVec::new(
                Opts::new("policy_reloads_total", "Policy reloads by result"),
                &["result"],
            )?,
            policy_info: IntGaugeVec::new(Opts::new("policy_info", "The policy in force (its hash)"), &["hash"])?,
            registry,
        };
        m.registry.register(Box::new(m.sessions_open.clone()))?;
        m.registry.register(Box::new(m.sessions_total.clone()))?;
        m.registry.register(Box::new(m.statements_total.clone()))?;
        m.registry.register(Box::new(m.decisions_total.clone()))?;
        m.registry.register(Box::new(m.precheck_seconds.clone()))?;
        m.registry.register(Box::new(m.upstream_connect_errors_total.clone()))?;
        m.registry.register(Box::new(m.policy_reloads_total.clone()))?;
        m.registry.register(Box::new(m.policy_info.clone()))?;
        Ok(m)
    }

    pub fn decision(&self, rule: &str, mode: &str, outcome: &str) {
        self.decisions_total.with_label_values(&[rule, mode, outcome]).inc();
    }

    pub fn set_policy(&self, hash: &str) {
        self.policy_info.reset();
        self.policy_info.with_label_values(&[hash]).set(1);
    }

    /// The exposition text.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_prometheus_text() {
        let m = super::Metrics::new().unwrap();
        m.sessions_total.inc();
        m.decision("protected-range", "enforce", "refused");
        m.set_policy("abc");
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains("blastwall_sessions_total 1"), "{text}");
        assert!(
            text.contains("blastwall_decisions_total{mode=\"enforce\",outcome=\"refused\",rule=\"protected-range\"} 1"),
            "{text}"
        );
        assert!(text.contains("blastwall_policy_info{hash=\"abc\"} 1"));
    }
}
