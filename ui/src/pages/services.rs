//! `/services` (also `/`): every service's health over a window, from its spans:
//! request rate, error share and p95 latency, each with a chart of its buckets.
//! `/services/{name}`: one service's charts and its operations. Every bucket of
//! every chart links to the trace search behind it: the same service (and
//! operation) and time bucket, failed traces only from the error chart, the
//! slowest first from the latency chart.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{load_health, Figures, Health, HealthSeries};
use crate::components::{lookback_ms, ErrorBox, LookbackSelect, MAP_LOOKBACKS, NO_DATA_HINT};
use crate::tags::encode;

/// Buckets an overview chart has.
const OVERVIEW_POINTS: u64 = 30;
/// Buckets a service's own charts have.
const DETAIL_POINTS: u64 = 60;

/// What a chart shows of each bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    Rate,
    Errors,
    P95,
}

impl Measure {
    pub(crate) fn of(self, figures: &Figures) -> Option<f64> {
        match self {
            Measure::Rate => Some(figures.rate),
            Measure::Errors => figures.error_percent(),
            Measure::P95 => figures.p95,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Measure::Rate => "requests",
            Measure::Errors => "errors",
            Measure::P95 => "p95 latency",
        }
    }
}

/// A measure's value for people: `1.25/s`, `2.5%`, `12.3 ms`; `–` for none.
pub(crate) fn show(measure: Measure, value: Option<f64>) -> String {
    let Some(value) = value else {
        return "–".into();
    };
    match measure {
        Measure::P95 => crate::format::latency_ms(Some(value)),
        Measure::Rate if value >= 100.0 => format!("{value:.0}/s"),
        Measure::Rate if value >= 0.1 => format!("{value:.2}/s"),
        Measure::Rate => format!("{:.2}/min", value * 60.0),
        Measure::Errors => format!("{value:.1}%"),
    }
}

/// The trace search behind one bucket of a chart.
pub(crate) fn search_href(
    service: &str,
    operation: Option<&str>,
    (start, end): (u64, u64),
    measure: Measure,
) -> String {
    let mut href = format!(
        "/search?service={}&lookback=custom&start={start}&end={end}",
        encode(service)
    );
    if let Some(operation) = operation {
        href.push_str(&format!("&operation={}", encode(operation)));
    }
    match measure {
        Measure::Errors => href.push_str("&tags=error%3Dtrue"),
        Measure::P95 => href.push_str("&sort=longest"),
        Measure::Rate => {}
    }
    href
}

/// The query of `/api/service-metrics` for `lookback` cut into about `points`
/// buckets (whole seconds).
fn health_query(lookback: &str, points: u64, more: &str) -> Result<String, String> {
    let ms = lookback_ms(lookback)?;
    let step_s = ms.div_ceil(points * 1000).max(1);
    Ok(format!("lookback={ms}ms&step={step_s}s{more}"))
}

fn bad_lookback(message: String) -> String {
    #[cfg(feature = "ssr")]
    crate::ssr::set_status(400);
    message
}

/// Bars, one per bucket, each a link to the traces behind it.
#[component]
fn Bars(
    series: HealthSeries,
    start_us: u64,
    step_us: u64,
    measure: Measure,
    /// Width and height in px.
    size: (f64, f64),
) -> impl IntoView {
    let (w, h) = size;
    let values: Vec<Option<f64>> = series.points.iter().map(|p| measure.of(p)).collect();
    let max = values.iter().flatten().copied().fold(0.0f64, f64::max);
    let n = values.len().max(1) as f64;
    let bw = w / n;
    let operation = series.operation.clone();
    let label = match &operation {
        Some(op) => format!("{} of {} {op}", measure.name(), series.service),
        None => format!("{} of {}", measure.name(), series.service),
    };
    view! {
        <svg
            class=format!("bars {}", match measure { Measure::Rate => "rate", Measure::Errors => "errors", Measure::P95 => "latency" })
            viewBox=format!("0 0 {w} {h}")
            width=w
            height=h
            role="group"
            aria-label=label
        >
            {values.into_iter().enumerate().filter_map(|(i, value)| {
                let value = value.filter(|v| *v > 0.0)?;
                let height = (value / max * (h - 2.0)).max(1.5);
                let start = start_us + i as u64 * step_us;
                let bucket = (start, start + step_us);
                let href = search_href(&series.service, operation.as_deref(), bucket, measure);
                let title = format!(
                    "{} at {}: {}",
                    measure.name(),
                    crate::format::timestamp(start),
                    show(measure, Some(value))
                );
                let name = title.clone();
                Some(view! {
                    <a href=href tabindex="-1" aria-label=name>
                        <rect x=i as f64 * bw + 0.5 y=h - height width=(bw - 1.0).max(0.5) height=height>
                            <title>{title}</title>
                        </rect>
                    </a>
                })
            }).collect_view()}
        </svg>
    }
}

/// One row per series: the whole window's figures, and each one's bars.
#[component]
fn HealthTable(health: Health, lookback: String, operations: bool) -> impl IntoView {
    let (start_us, step_us) = (health.start_us, health.step_us);
    let first = if operations { "Operation" } else { "Service" };
    view! {
        <table class="health">
            <thead>
                <tr>
                    <th scope="col">{first}</th>
                    <th scope="col" colspan="2">"Requests"</th>
                    <th scope="col" colspan="2">"Errors"</th>
                    <th scope="col" colspan="2">"p95 latency"</th>
                </tr>
            </thead>
            <tbody>
                {health.series.into_iter().map(|series| {
                    let name_cell = match &series.operation {
                        Some(op) => view! {
                            <a href=format!(
                                "/search?service={}&operation={}&lookback={}",
                                encode(&series.service),
                                encode(op),
                                encode(&lookback)
                            )>{op.clone()}</a>
                        }.into_any(),
                        None => view! {
                            <a href=format!(
                                "/services/{}?lookback={}",
                                encode(&series.service),
                                encode(&lookback)
                            )>{series.service.clone()}</a>
                        }.into_any(),
                    };
                    let total = series.total.clone();
                    let failing = total.errors > 0;
                    let cell = |measure: Measure| {
                        let series = series.clone();
                        view! {
                            <td class="figure">{show(measure, measure.of(&total))}</td>
                            <td class="chart">
                                <Bars series=series start_us=start_us step_us=step_us measure=measure size=(150.0, 26.0)/>
                            </td>
                        }
                    };
                    view! {
                        <tr class:failing=failing data-service=series.service.clone() data-operation=series.operation.clone()>
                            <th scope="row">{name_cell}</th>
                            {cell(Measure::Rate)}
                            {cell(Measure::Errors)}
                            {cell(Measure::P95)}
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn ServicesPage() -> impl IntoView {
    let query = use_query_map();
    let lookback = Memo::new(move |_| query.read().get("lookback").unwrap_or_else(|| "1h".into()));
    let health = Resource::new(
        move || lookback.get(),
        |lookback| async move {
            let query = health_query(&lookback, OVERVIEW_POINTS, "").map_err(bad_lookback)?;
            load_health(query)
                .await
                .map_err(|e| crate::api::problem(&e))
        },
    );
    view! {
        <Title text="Services"/>
        <section class="services-health">
            <form method="get" action="/services" class="filters">
                <label>"Window"
                    <LookbackSelect options=MAP_LOOKBACKS selected=lookback.into()/>
                </label>
                <button type="submit">"Show"</button>
            </form>
            <p class="hint">
                "Requests are each service's server and consumer spans (its root spans if it has neither). "
                "Click a bar for the traces behind it."
            </p>
            <Suspense fallback=|| view! { <p class="loading">"Loading services…"</p> }>
                {move || Suspend::new(async move {
                    match health.await {
                        Ok(health) if health.series.is_empty() => view! {
                            <p class="empty">"No requests in this window. "{NO_DATA_HINT}</p>
                        }.into_any(),
                        Ok(health) => view! {
                            <HealthTable health=health lookback=lookback.get_untracked() operations=false/>
                        }.into_any(),
                        Err(message) => view! { <ErrorBox message=message/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// A service's charts (requests, error share, p50/p95/p99) and its operations.
#[component]
pub fn ServicePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let service = Memo::new(move |_| params.read().get("service").unwrap_or_default());
    let lookback = Memo::new(move |_| query.read().get("lookback").unwrap_or_else(|| "1h".into()));
    let health = Resource::new(
        move || (service.get(), lookback.get()),
        |(service, lookback)| async move {
            let whole = health_query(
                &lookback,
                DETAIL_POINTS,
                &format!("&service={}", encode(&service)),
            )
            .map_err(bad_lookback)?;
            let per_operation = format!("{whole}&groupByOperation=true");
            let problem = |e: ServerFnError| crate::api::problem(&e);
            let whole = load_health(whole).await.map_err(problem)?;
            let per_operation = load_health(per_operation).await.map_err(problem)?;
            Ok::<_, String>((whole, per_operation))
        },
    );
    view! {
        <Title text=move || format!("{} · Services", service.get())/>
        <section class="service-health">
            <h1>{move || service.get()}</h1>
            <form method="get" action=move || format!("/services/{}", encode(&service.get())) class="filters">
                <label>"Window"
                    <LookbackSelect options=MAP_LOOKBACKS selected=lookback.into()/>
                </label>
                <button type="submit">"Show"</button>
                <a href=move || format!("/search?service={}&lookback={}", encode(&service.get()), encode(&lookback.get()))>
                    "Search its traces"
                </a>
            </form>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match health.await {
                        Ok((whole, _)) if whole.series.is_empty() => view! {
                            <p class="empty">
                                "No requests of this service in this window. "
                                <a href="/services">"All services"</a>
                            </p>
                        }.into_any(),
                        Ok((whole, per_operation)) => {
                            let (start_us, step_us) = (whole.start_us, whole.step_us);
                            let series = whole.series[0].clone();
                            let total = series.total.clone();
                            view! {
                                <div class="charts">
                                    {[Measure::Rate, Measure::Errors, Measure::P95].into_iter().map(|measure| {
                                        let series = series.clone();
                                        let figure = show(measure, measure.of(&total));
                                        view! {
                                            <figure class="chart">
                                                <figcaption>{measure.name()}" "<strong>{figure}</strong></figcaption>
                                                <Bars series=series.clone() start_us=start_us step_us=step_us measure=measure size=(360.0, 90.0)/>
                                                {(measure == Measure::P95).then(|| view! {
                                                    <Quantiles series=series size=(360.0, 90.0)/>
                                                })}
                                            </figure>
                                        }
                                    }).collect_view()}
                                </div>
                                <h2>"Operations"</h2>
                                <HealthTable health=per_operation lookback=lookback.get_untracked() operations=true/>
                            }.into_any()
                        }
                        Err(message) => view! { <ErrorBox message=message/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// p50, p95 and p99 of each bucket as lines, with the range's values.
#[component]
fn Quantiles(series: HealthSeries, size: (f64, f64)) -> impl IntoView {
    let (w, h) = size;
    type Pick = fn(&Figures) -> Option<f64>;
    let lines: [(&str, Pick); 3] = [("p50", |f| f.p50), ("p95", |f| f.p95), ("p99", |f| f.p99)];
    let max = series
        .points
        .iter()
        .filter_map(|p| p.p99)
        .fold(0.0f64, f64::max);
    let n = series.points.len().max(1) as f64;
    let bw = w / n;
    view! {
        <svg class="quantiles" viewBox=format!("0 0 {w} {h}") width=w height=h role="img"
            aria-label=format!(
                "latency of {}: p50 {}, p95 {}, p99 {}",
                series.service,
                crate::format::latency_ms(series.total.p50),
                crate::format::latency_ms(series.total.p95),
                crate::format::latency_ms(series.total.p99)
            )>
            {lines.into_iter().map(|(name, pick)| {
                let points: Vec<String> = series.points.iter().enumerate().filter_map(|(i, p)| {
                    let v = pick(p)?;
                    let y = h - 1.0 - v / max.max(f64::MIN_POSITIVE) * (h - 2.0);
                    Some(format!("{:.1},{:.1}", i as f64 * bw + bw / 2.0, y))
                }).collect();
                view! { <polyline class=name points=points.join(" ")/> }
            }).collect_view()}
        </svg>
        <p class="legend">
            <span class="p50">"p50 "{crate::format::latency_ms(series.total.p50)}</span>
            <span class="p95">"p95 "{crate::format::latency_ms(series.total.p95)}</span>
            <span class="p99">"p99 "{crate::format::latency_ms(series.total.p99)}</span>
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_links_to_the_traces_behind_it() {
        let bucket = (1_000_000, 61_000_000);
        assert_eq!(
            search_href("order service", None, bucket, Measure::Rate),
            "/search?service=order%20service&lookback=custom&start=1000000&end=61000000"
        );
        assert_eq!(
            search_href("orders", Some("GET /x"), bucket, Measure::Errors),
            "/search?service=orders&lookback=custom&start=1000000&end=61000000&operation=GET%20%2Fx&tags=error%3Dtrue"
        );
        assert!(search_href("orders", None, bucket, Measure::P95).ends_with("&sort=longest"));
    }

    #[test]
    fn figures_read_as_rates_shares_and_durations() {
        assert_eq!(show(Measure::Rate, Some(0.25)), "0.25/s");
        assert_eq!(show(Measure::Rate, Some(5.0 / 3600.0)), "0.08/min");
        assert_eq!(show(Measure::Rate, Some(1234.4)), "1234/s");
        assert_eq!(show(Measure::Errors, Some(12.5)), "12.5%");
        assert_eq!(show(Measure::Errors, None), "–");
        assert_eq!(
            show(Measure::P95, Some(12.5)),
            crate::format::duration(12_500)
        );
        assert_eq!(
            health_query("1h", 30, "&service=a"),
            Ok("lookback=3600000ms&step=120s&service=a".into())
        );
        assert!(health_query("soon", 30, "").is_err());
    }
}
