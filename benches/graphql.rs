//! Run with: cargo bench --bench graphql
//!
//! Parse + validate + plan of a realistic dashboard query (three services, aliases, a fragment,
//! variables, skip/include), and projection of a realistic backend answer through its selection.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::json;
use serde_json::value::RawValue;
use switchyard::graphql::{plan, project, Limits, RootKind};

const QUERY: &str = r#"
query Dashboard($user: String = "/users/42", $withOrders: Boolean!, $trace: String!) {
  me: user_svc(path: $user, headers: [{name: "x-trace", value: $trace}]) { ...Person }
  orders: order_svc(path: "/orders", query: "user=42&limit=20") @include(if: $withOrders) {
    total
    items { id status total { amount currency } lines { sku qty } }
  }
  recs: recommendation_svc(method: "POST", path: "/recommend", body: {user: 42, limit: 5}) {
    items { id score product { name price } }
  }
  __typename
}
fragment Person on JSON { id name email address { city country } friends { id name } }
"#;

fn backend_answer() -> String {
    let items: Vec<_> = (0..20)
        .map(|i| {
            json!({
                "id": i, "status": "shipped", "created": "2024-01-01T00:00:00Z",
                "total": {"amount": 1999 + i, "currency": "EUR", "tax": 399},
                "lines": [{"sku": "A-1", "qty": 1, "price": 999, "meta": {"warehouse": "osl", "bin": "12"}},
                          {"sku": "B-2", "qty": 2, "price": 500, "meta": {"warehouse": "osl", "bin": "7"}}],
                "shipping": {"carrier": "posten", "tracking": "XYZ123456789", "events": [1, 2, 3, 4]},
                "notes": "leave at the door, ring twice, beware of the dog"
            })
        })
        .collect();
    json!({"total": 20, "items": items, "next": "cursor-abc"}).to_string()
}

fn bench(c: &mut Criterion) {
    let services: Vec<String> = ["user-svc", "order-svc", "recommendation-svc", "audit-svc"]
        .map(String::from)
        .to_vec();
    let variables = json!({"withOrders": true, "trace": "t-1"});
    let variables = variables.as_object().unwrap();
    let limits = Limits::default();

    c.bench_function("graphql/parse_validate_plan", |b| {
        b.iter(|| {
            plan(
                services.clone(),
                black_box(QUERY),
                Some(variables),
                None,
                &limits,
            )
            .unwrap()
        })
    });

    let planned = plan(services.clone(), QUERY, Some(variables), None, &limits).unwrap();
    let orders = planned
        .fields
        .iter()
        .find(|f| matches!(&f.kind, RootKind::Service { service, .. } if service == "order-svc"))
        .unwrap();
    let selection = orders.selection.as_deref();
    let answer = backend_answer();
    let mut out = Vec::with_capacity(answer.len());
    c.bench_function("graphql/project_orders", |b| {
        b.iter(|| {
            out.clear();
            let raw: &RawValue = serde_json::from_str(black_box(&answer)).unwrap();
            project(raw, selection, &mut out, usize::MAX).unwrap();
        })
    });

    c.bench_function("graphql/parse_plan_project", |b| {
        b.iter(|| {
            let planned = plan(
                services.clone(),
                black_box(QUERY),
                Some(variables),
                None,
                &limits,
            )
            .unwrap();
            let mut out = Vec::new();
            for field in &planned.fields {
                if let RootKind::Service { .. } = field.kind {
                    let raw: &RawValue = serde_json::from_str(&answer).unwrap();
                    project(raw, field.selection.as_deref(), &mut out, usize::MAX).unwrap();
                }
            }
            out
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
