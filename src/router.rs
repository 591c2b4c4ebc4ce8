//! The entry point for every client request: [`route`] decides from its head where it goes, or
//! what refuses it, and [`handle`] answers it, the one place where a handler's error becomes the
//! response (with the request id every response carries).
//!
//! `/-/…` is the gateway's own namespace, `/graphql` the GraphQL endpoint, anything else REST.
//!
//! Routing needs only the head, so it is one function a codec can also ask before it reads the
//! body: both codecs do before they invite a body with `100 Continue`, and answer a refusal at
//! once instead of after the upload (RFC 9110 §10.1.1).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::{ErrorKind, GatewayError};
use crate::http::{Request, RequestHead, Response};
use crate::request_id::RequestId;
use crate::shard::{InFlight, Shard};
use crate::upstream::budget::AnswerHold;

/// Where a request goes, as its head alone tells ([`route`]).
pub enum Route {
    /// One of the gateway's own endpoints, checked (method, authorisation, names). Exempt from
    /// the in-flight limit, so that health checks still answer under overload.
    Admin(crate::admin::Endpoint),
    /// The GraphQL endpoint, with the method's kind of GraphQL request, holding an in-flight slot.
    Graphql(crate::graphql::HttpMethod, InFlight),
    /// A REST call to a registered service, holding an in-flight slot.
    Rest(crate::rest::Target),
}

/// Routes a request by its head: the one place that decides where a request goes and what refuses
/// it before its body matters — an unknown service (404; 503 while a cluster gateway's registry has
/// not caught up, as for GraphQL then) or gateway endpoint (404), a method an
/// endpoint does not take (405), a registry write that is not authorised (401, 403) or names an
/// invalid service or instance (400), the in-flight limit (503). [`handle`] routes every request
/// with it; the codecs also ask it before sending `100 Continue` (and drop the route: the request
/// is routed again once its body is in, when the registry or the load may have changed).
pub fn route(shard: &Rc<Shard>, head: &RequestHead<'_>) -> Result<Route, GatewayError> {
    if crate::admin::is_admin_path(head.path) {
        return crate::admin::route(shard, head).map(Route::Admin);
    }
    if head.path == GRAPHQL_PATH {
        let method = crate::graphql_endpoint::method(head.method)?;
        crate::graphql_endpoint::check_schema_loaded(shard)?;
        return Ok(Route::Graphql(method, enter(shard)?));
    }
    let (service, _) = crate::rest::split_path(head.path);
    let entry = crate::rest::lookup(shard, service)?;
    Ok(Route::Rest(crate::rest::Target {
        entry,
        in_flight: enter(shard)?,
    }))
}

/// Whether the gateway builds the answer to a request for `path` whole (`/-/`, GraphQL), rather
/// than passing a backend's answer on as it comes (REST): such an answer is all in memory before
/// any of it goes out (`upstream::budget`).
pub fn builds_whole(path: &[u8]) -> bool {
    crate::admin::is_admin_path(path) || path == GRAPHQL_PATH
}

/// The GraphQL endpoint's path.
const GRAPHQL_PATH: &[u8] = b"/graphql";

/// An in-flight slot, or 503 at the limit.
fn enter(shard: &Rc<Shard>) -> Result<InFlight, GatewayError> {
    shard.enter().ok_or_else(|| {
        GatewayError::new(
            ErrorKind::Overloaded,
            "the gateway is at its in-flight limit",
        )
    })
}

pin_project_lite::pin_project! {
    /// A routed request's answer: the future of the handler its route chose, or the refusal.
    /// Made before it is first polled, so that neither the route nor the head it was read from
    /// stays in [`handle`]'s state beside the handler while it runs (a `match` over the route
    /// with an `.await` in each arm kept both: 128 bytes, which took the box a connection
    /// answers its requests in from the allocator's 2 KiB bin to its 2.5 KiB one).
    #[project = AnswerProj]
    enum Answer<A, G, R> {
        /// Refused by the route; taken when polled.
        Refused { error: Option<GatewayError> },
        /// A gateway endpoint's handler.
        Admin { #[pin] handler: A },
        /// The GraphQL handler, boxed: its state is the largest of the three (2.5 KB against
        /// REST's 1.5 KB) and would otherwise size every connection's answer. A GraphQL request
        /// allocates plenty anyway; REST stays inline and allocation-free.
        Graphql { handler: Pin<Box<G>> },
        /// The REST call.
        Rest { #[pin] handler: R },
    }
}

impl<A, G, R> Future for Answer<A, G, R>
where
    A: Future<Output = Result<Response, GatewayError>>,
    G: Future<Output = Result<Response, GatewayError>>,
    R: Future<Output = Result<Response, GatewayError>>,
{
    type Output = Result<Response, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AnswerProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .expect("an answer is not polled when done"))),
            AnswerProj::Admin { handler } => handler.poll(cx),
            AnswerProj::Graphql { handler } => handler.as_mut().poll(cx),
            AnswerProj::Rest { handler } => handler.poll(cx),
        }
    }
}

/// Serves one complete request; `hold` takes a REST answer's share of an HTTP/2 connection's
/// budget, and a GraphQL answer's place to be built in (`upstream::budget`).
pub async fn handle(shard: &Rc<Shard>, request: &Request, hold: Option<&AnswerHold>) -> Response {
    // One clock reading serves the latency histogram and, for REST, the backend call's deadline.
    let start = Instant::now();
    let assigned = RequestId::for_request(&request.headers, &shard.rng);
    // Each handler takes what its route holds, its in-flight slot included, until it is done.
    let answer = match route(shard, &request.head()) {
        Err(refused) => Answer::Refused {
            error: Some(refused),
        },
        Ok(Route::Admin(endpoint)) => Answer::Admin {
            handler: crate::admin::handle(shard, request, endpoint),
        },
        Ok(Route::Graphql(method, in_flight)) => Answer::Graphql {
            handler: Box::pin(crate::graphql_endpoint::handle(
                shard, request, method, in_flight, &assigned, hold,
            )),
        },
        Ok(Route::Rest(target)) => Answer::Rest {
            handler: crate::rest::forward(shard, request, target, &assigned, start, hold),
        },
    };
    let result = answer.await;
    let request_id = assigned.id;
    let response = match result {
        Ok(mut response) => {
            response.request_id = Some(request_id);
            response
        }
        Err(error) => {
            tracing::debug!(%request_id, %error, "request failed");
            error.answer(crate::rest::service_of(request.path_str()), request_id)
        }
    };
    shard.metrics.count_response(response.status);
    shard.metrics.observe_duration(start.elapsed());
    response
}
