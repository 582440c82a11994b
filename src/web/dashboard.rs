//! The dashboard: deliveries per hour (succeeded and failed) for the last 24 hours and 7 days
//! as inline SVG, the success rate, the events not sent because a rule's condition could not
//! be evaluated, and the rules that are failing now (attempts or condition). The chart reads the
//! per-hour counters (`HOURLY_OUTCOMES`, at most 168 rows), never the delivery log itself.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{AnyUser, Layout, WebError, fmt_time, ok};
use crate::app::AppState;
use crate::app::overview::overview;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(dashboard)));
}

/// Drawing area of a chart, in SVG user units (the SVG scales to the page width).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;

pub struct Bar {
    x: String,
    w: String,
    ok_y: String,
    ok_h: String,
    fail_y: String,
    fail_h: String,
    label: String,
}

pub struct Chart {
    title: String,
    bars: Vec<Bar>,
    succeeded: u64,
    failed: u64,
    max: u64,
    /// Labels under the x axis, evenly spaced (HTML under the SVG, so they keep their size
    /// on a phone where the drawing shrinks).
    ticks: Vec<String>,
    summary: String,
    /// The same figures as a table, for keyboards and screen readers: (period, succeeded,
    /// failed), one row per `rows_every` hours, oldest first.
    rows: Vec<(String, u64, u64)>,
    /// What a row of the table covers ("Hour" or "24 hours from").
    period: &'static str,
}

fn f(v: f64) -> String {
    format!("{v:.2}")
}

/// Lossless for any count a chart can show; u64 → f64 only loses precision past 2^53.
#[allow(clippy::cast_precision_loss)]
fn as_f64(v: u64) -> f64 {
    v as f64
}

fn chart(title: &str, hours: &[(i64, u64, u64)], tick_every: usize) -> Chart {
    let max = hours
        .iter()
        .map(|(_, s, f)| s + f)
        .max()
        .unwrap_or(0)
        .max(1);
    let n = as_f64(hours.len().max(1) as u64);
    let slot = WIDTH / n;
    let gap = if slot > 4.0 { 1.0 } else { 0.0 };
    let scale = HEIGHT / as_f64(max);
    let mut bars = Vec::with_capacity(hours.len());
    let mut ticks = Vec::new();
    for (i, &(hour, ok_n, fail_n)) in hours.iter().enumerate() {
        let x = slot * as_f64(i as u64);
        let ok_h = as_f64(ok_n) * scale;
        let fail_h = as_f64(fail_n) * scale;
        let label = fmt_time(hour);
        bars.push(Bar {
            x: f(x),
            w: f((slot - gap).max(0.5)),
            ok_y: f(HEIGHT - ok_h),
            ok_h: f(ok_h),
            fail_y: f(HEIGHT - ok_h - fail_h),
            fail_h: f(fail_h),
            label: format!("{label}: {ok_n} succeeded, {fail_n} failed"),
        });
        if i % tick_every == 0 {
            // "2026-11-23 14:00:00 UTC" → "23 14:00" for 7 days, "14:00" for 24 hours.
            let short = if tick_every >= 24 {
                format!("{} {}", &label[8..10], &label[11..16])
            } else {
                label[11..16].to_owned()
            };
            ticks.push(short);
        }
    }
    let rows_every = if tick_every >= 24 { 24 } else { 1 };
    let rows = hours
        .chunks(rows_every)
        .map(|c| {
            let label = fmt_time(c[0].0);
            let period = if rows_every == 1 {
                label[..16].to_owned()
            } else {
                format!("{} UTC", &label[..16])
            };
            (
                period,
                c.iter().map(|h| h.1).sum(),
                c.iter().map(|h| h.2).sum(),
            )
        })
        .collect();
    let succeeded: u64 = hours.iter().map(|h| h.1).sum();
    let failed: u64 = hours.iter().map(|h| h.2).sum();
    let total = succeeded + failed;
    let summary = if total == 0 {
        "No deliveries finished in this time.".to_owned()
    } else {
        let rate = as_f64(succeeded) * 100.0 / as_f64(total);
        format!("{succeeded} succeeded and {failed} failed ({rate:.1}% success).")
    };
    Chart {
        title: title.to_owned(),
        bars,
        succeeded,
        failed,
        max,
        ticks,
        summary,
        rows,
        period: if rows_every == 1 {
            "Hour starting (UTC)"
        } else {
            "24 hours starting"
        },
    }
}

struct FailingRule {
    id: String,
    name: String,
    /// When every attempt started failing, if they are.
    since: Option<String>,
    /// Events in the last 24 hours whose condition could not be evaluated, and the latest.
    condition_errors: u64,
    condition_latest: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/dashboard.html")]
struct DashboardPage {
    l: Layout,
    day: Chart,
    week: Chart,
    failing: Vec<FailingRule>,
    open: u64,
    rule_count: usize,
    /// `condition_error` deliveries in the last 24 hours.
    condition_errors: u64,
    /// The first-run checklist, while a step that can be checked is still to do.
    steps: Option<super::NextSteps>,
}

async fn dashboard(
    AnyUser(me): AnyUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let o = overview(&state, me.workspace().clone()).await?;
    // One entry per rule: failing attempts first (longest first), then rules whose only
    // trouble is their condition.
    let mut failing: Vec<FailingRule> = o
        .failing
        .iter()
        .map(|(r, since)| FailingRule {
            id: r.id.to_string(),
            name: r.name.clone(),
            since: Some(fmt_time(*since)),
            condition_errors: 0,
            condition_latest: None,
        })
        .collect();
    for (r, e) in &o.condition_errors {
        let id = r.id.to_string();
        let entry = if let Some(i) = failing.iter().position(|f| f.id == id) {
            &mut failing[i]
        } else {
            failing.push(FailingRule {
                id,
                name: r.name.clone(),
                since: None,
                condition_errors: 0,
                condition_latest: None,
            });
            failing.last_mut().expect("just pushed")
        };
        entry.condition_errors = e.count;
        entry.condition_latest = Some(fmt_time(e.latest_at));
    }
    let steps = Some(super::NextSteps::of(&state, me.workspace(), &o.rules).await?)
        .filter(super::NextSteps::pending);
    let week = o.week;
    let day = &week[week.len().saturating_sub(24)..];
    ok(&DashboardPage {
        l: Layout::new(&state, Some(&me), "dashboard", "Dashboard"),
        day: chart("Last 24 hours", day, 3),
        week: chart("Last 7 days", &week, 24),
        failing,
        open: o.open,
        rule_count: o.rules.len(),
        condition_errors: o.condition_error_count,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_and_scale_to_the_busiest_hour() {
        let hours = [(0, 10, 0), (3_600_000, 5, 5), (7_200_000, 0, 0)];
        let c = chart("t", &hours, 1);
        assert_eq!(c.max, 10);
        assert_eq!(c.bars[0].ok_h, "160.00");
        assert_eq!(c.bars[1].ok_h, "80.00");
        assert_eq!(c.bars[1].fail_y, "0.00");
        assert_eq!(c.bars[2].ok_h, "0.00");
        assert_eq!((c.succeeded, c.failed), (15, 5));
        assert!(c.summary.contains("75.0%"));
        assert!(
            chart("t", &[(0, 0, 0)], 1)
                .summary
                .starts_with("No deliveries")
        );
    }
}
