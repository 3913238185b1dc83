//! `pods/{name}/log`, `pods/{name}/exec` and `pods/{name}/attach`: forwarded
//! to the node agent of the pod's node, as the kube-apiserver forwards them
//! to the kubelet.
//!
//! The agent is found from the Node object: its InternalIP (else Hostname)
//! address and `status.daemonEndpoints.kubeletEndpoint.Port`. Logs are
//! relayed as a stream; exec is an HTTP/1.1 upgrade proxied transparently
//! (the client's WebSocket handshake goes to the agent, the agent's `101`
//! comes back, then bytes are copied both ways), so the WebSocket protocol
//! is spoken end to end between kubectl and the agent. The client's own
//! credentials stay here: the agent gets the token the API server holds for
//! agents, and only over TLS to the certificate the Node pins
//! ([`agent_tls`]): a Node without the pin, or an agent presenting another
//! certificate, gets no request at all and the client a 503.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use nuage_model::registry;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::agent_tls::{self, CERTIFICATE_ANNOTATION};
use super::Ctx;
use crate::request::Query;
use crate::status::{ApiError, ApiResult};

/// How long connecting to an agent (TCP and TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the agent may take to answer with its status line (a log
/// stream's first bytes may come much later; only the head is bounded).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The annotation naming the container kubectl (and this server) picks
/// when the request names none.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// Query parameters passed on to the agent, per subresource (the rest,
/// like `container`, are the API server's own).
const LOG_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
    "stream",
];
const EXEC_PARAMS: &[&str] = &["command", "stdin", "stdout", "stderr", "tty"];

/// Headers of a WebSocket handshake that go to the agent and back.
const UPGRADE_HEADERS: &[HeaderName] = &[
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::SEC_WEBSOCKET_EXTENSIONS,
];

/// Serves `GET pods/{name}/log`, `GET|POST pods/{name}/exec|attach`.
pub async fn forward(mut ctx: Ctx, method: Method) -> ApiResult<Response> {
    let upgrade = ctx.upgrade.take();
    let sub = ctx.target.subresource.clone().unwrap_or_default();
    let ns = ctx.ns().unwrap_or("default").to_string();
    let name = ctx.name().to_string();
    let pod = ctx
        .state
        .objects
        .get_existing(ctx.target.rt, Some(&ns), &name)
        .await?;
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let container = pick_container(&pod, &name, ctx.query.get("container"))?;
    let nodes = registry::lookup("", "v1", "nodes").expect("nodes are a core resource");
    let node = ctx
        .state
        .objects
        .get(nodes, None, node_name)
        .await?
        .ok_or_else(|| ApiError::not_found(nodes, node_name))?;
    let addr = agent_address(&node).ok_or_else(|| {
        ApiError::unavailable(format!(
            "node {node_name} has no agent address (status.addresses and status.daemonEndpoints.kubeletEndpoint.Port)"
        ))
    })?;
    let pin = agent_pin(&node, node_name)?;
    let (agent_path, params) = match sub.as_str() {
        "log" => ("containerLogs", LOG_PARAMS),
        "exec" => ("exec", EXEC_PARAMS),
        _ => ("attach", EXEC_PARAMS),
    };
    let mut uri = format!("/{agent_path}/{ns}/{name}/{container}");
    let query = agent_query(&ctx.query, params);
    if !query.is_empty() {
        uri = format!("{uri}?{query}");
    }
    let tls = agent_tls::client_config(pin)
        .map_err(|e| ApiError::internal(format!("tls client configuration: {e}")))?;
    let agent = Agent {
        node: node_name.to_string(),
        server_name: server_name(&addr),
        addr,
        tls,
        token: ctx.state.agent_token.clone(),
    };
    tracing::debug!(node = %agent.node, addr = %agent.addr, %uri, "forwarding to the node agent");
    if sub == "log" {
        agent.relay(Method::GET, &uri).await
    } else {
        agent.upgrade(method, &uri, &ctx.headers, upgrade).await
    }
}

/// The container a request is about: the one named (it must be in the pod),
/// else the only one, else the pod's default-container annotation.
pub fn pick_container(pod: &Value, pod_name: &str, asked: Option<&str>) -> ApiResult<String> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    if let Some(c) = asked.filter(|c| !c.is_empty()) {
        if containers
            .iter()
            .chain(&init)
            .chain(&ephemeral)
            .any(|n| n == c)
        {
            return Ok(c.to_string());
        }
        return Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        )));
    }
    if let [only] = containers.as_slice() {
        return Ok(only.clone());
    }
    let annotated = pod["metadata"]["annotations"][DEFAULT_CONTAINER].as_str();
    if let Some(c) = annotated.filter(|c| containers.iter().any(|n| n == c)) {
        return Ok(c.to_string());
    }
    let mut msg = format!(
        "a container name must be specified for pod {pod_name}, choose one of: [{}]",
        containers.join(" ")
    );
    if !init.is_empty() {
        msg.push_str(&format!(
            " or one of the init containers: [{}]",
            init.join(" ")
        ));
    }
    if !ephemeral.is_empty() {
        msg.push_str(&format!(
            " or one of the ephemeral containers: [{}]",
            ephemeral.join(" ")
        ));
    }
    Err(ApiError::bad_request(msg))
}

/// `host:port` of a node's agent: its InternalIP (else its Hostname) and its
/// kubelet endpoint port.
pub fn agent_address(node: &Value) -> Option<String> {
    let addresses = node["status"]["addresses"].as_array()?;
    let find = |kind: &str| {
        addresses
            .iter()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .filter(|a| !a.is_empty())
    };
    let host = find("InternalIP").or_else(|| find("Hostname"))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64()?;
    if port == 0 || port > u64::from(u16::MAX) {
        return None;
    }
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// The SHA-256 of the agent's certificate the Node pins: without it the
/// agent cannot be told from anyone on its address, so nothing is sent.
pub fn agent_pin(node: &Value, node_name: &str) -> ApiResult<[u8; 32]> {
    let Some(value) = node["metadata"]["annotations"][CERTIFICATE_ANNOTATION].as_str() else {
        return Err(ApiError::unavailable(format!(
            "node {node_name} has no {CERTIFICATE_ANNOTATION} annotation: its agent's certificate is unknown, so it cannot be reached safely (an agent sets it when it registers)"
        )));
    };
    agent_tls::parse_sha256(value).ok_or_else(|| {
        ApiError::unavailable(format!(
            "node {node_name} has an invalid {CERTIFICATE_ANNOTATION} annotation {value:?}: want a SHA-256 as 64 hex digits"
        ))
    })
}

/// The name the TLS client gives for `host:port`: the IP, else the host
/// name, else a fixed name. The pin, not the name, is what is checked.
fn server_name(addr: &str) -> ServerName<'static> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ServerName::IpAddress(ip.into());
    }
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("nuage-agent").expect("a valid DNS name"))
}

/// The query the agent gets: the parameters of `params` (repeated ones,
/// like `command`, in the client's order).
pub fn agent_query(query: &Query, params: &[&str]) -> String {
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .flat_map(|k| query.all(k).into_iter().map(move |v| (*k, v)))
        .collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// One node's agent.
struct Agent {
    node: String,
    addr: String,
    server_name: ServerName<'static>,
    /// Trusts only the certificate the Node pins.
    tls: Arc<rustls::ClientConfig>,
    token: String,
}

impl Agent {
    fn unreachable(&self, why: impl std::fmt::Display) -> ApiError {
        ApiError::unavailable(format!(
            "the agent of node {} at {} is unreachable: {why}",
            self.node, self.addr
        ))
    }

    /// A TLS connection to the agent whose certificate is the pinned one.
    /// The token goes out only on a connection this returned.
    async fn connect(&self) -> ApiResult<TokioIo<TlsStream<TcpStream>>> {
        let connect = async {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| self.unreachable(e))?;
            let _ = stream.set_nodelay(true);
            TlsConnector::from(Arc::clone(&self.tls))
                .connect(self.server_name.clone(), stream)
                .await
                .map_err(|e| self.handshake_failed(&e))
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| self.unreachable("connection timed out"))??;
        Ok(TokioIo::new(stream))
    }

    fn handshake_failed(&self, err: &std::io::Error) -> ApiError {
        match agent_tls::fingerprint_mismatch(err) {
            Some(m) => {
                tracing::warn!(node = %self.node, addr = %self.addr, presented = %m.presented, pinned = %m.pinned, "agent certificate does not match the node's pin");
                ApiError::unavailable(format!(
                    "the agent of node {} at {} is not the one that registered the node: {m} ({CERTIFICATE_ANNOTATION}); nothing was sent to it",
                    self.node, self.addr
                ))
            }
            None => self.unreachable(format_args!("tls handshake: {err}")),
        }
    }

    fn request(&self, method: Method, uri: &str) -> ApiResult<axum::http::request::Builder> {
        let auth = HeaderValue::from_str(&format!("Bearer {}", self.token))
            .map_err(|_| ApiError::internal("the agent token is not a valid header value"))?;
        Ok(Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, &self.addr)
            .header(header::AUTHORIZATION, auth))
    }

    async fn send(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Body>,
        req: Request<Body>,
    ) -> ApiResult<hyper::Response<hyper::body::Incoming>> {
        tokio::time::timeout(HEAD_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| self.unreachable("no answer"))?
            .map_err(|e| self.unreachable(e))
    }

    /// A plain request whose answer (status, type, streamed body) is relayed.
    async fn relay(&self, method: Method, uri: &str) -> ApiResult<Response> {
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| self.unreachable(e))?;
        // Ends when the response body is read or dropped (client gone).
        tokio::spawn(conn);
        let req = self
            .request(method, uri)?
            .body(Body::empty())
            .map_err(|e| ApiError::internal(format!("agent request: {e}")))?;
        let resp = self.send(&mut sender, req).await?;
        let mut out = Response::builder().status(resp.status());
        if let Some(ct) = resp.headers().get(header::CONTENT_TYPE) {
            out = out.header(header::CONTENT_TYPE, ct);
        }
        out.body(Body::new(resp.into_body()))
            .map_err(|e| ApiError::internal(format!("relay response: {e}")))
    }

    /// Passes the client's upgrade handshake to the agent; on `101`, joins
    /// the two upgraded connections. Any other answer is relayed.
    async fn upgrade(
        &self,
        method: Method,
        uri: &str,
        headers: &HeaderMap,
        upgrade: Option<OnUpgrade>,
    ) -> ApiResult<Response> {
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| self.unreachable(e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "agent connection ended");
            }
        });
        let mut req = self.request(method, uri)?;
        for name in UPGRADE_HEADERS {
            for v in headers.get_all(name) {
                req = req.header(name, v);
            }
        }
        let req = req
            .body(Body::empty())
            .map_err(|e| ApiError::internal(format!("agent request: {e}")))?;
        let mut resp = self.send(&mut sender, req).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let mut out = Response::builder().status(resp.status());
            if let Some(ct) = resp.headers().get(header::CONTENT_TYPE) {
                out = out.header(header::CONTENT_TYPE, ct);
            }
            return out
                .body(Body::new(resp.into_body()))
                .map_err(|e| ApiError::internal(format!("relay response: {e}")));
        }
        let Some(client_side) = upgrade else {
            return Err(ApiError::bad_request(
                "exec needs an HTTP/1.1 connection upgrade (WebSocket, v5.channel.k8s.io)",
            ));
        };
        let agent_side = hyper::upgrade::on(&mut resp);
        let mut out = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        for name in UPGRADE_HEADERS
            .iter()
            .chain([&header::SEC_WEBSOCKET_ACCEPT])
        {
            for v in resp.headers().get_all(name) {
                out = out.header(name, v);
            }
        }
        let node = self.node.clone();
        tokio::spawn(async move {
            match tokio::try_join!(client_side, agent_side) {
                Ok((client, agent)) => {
                    let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
                        tracing::debug!(%node, error = %e, "exec stream ended");
                    }
                }
                Err(e) => tracing::debug!(%node, error = %e, "exec upgrade failed"),
            }
        });
        out.body(Body::empty())
            .map_err(|e| ApiError::internal(format!("upgrade response: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: &[&str], init: &[&str], annotation: Option<&str>) -> Value {
        let list = |names: &[&str]| names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>();
        let mut p = json!({
            "metadata": {"name": "web"},
            "spec": {"containers": list(containers), "initContainers": list(init)},
        });
        if let Some(a) = annotation {
            p["metadata"]["annotations"] = json!({DEFAULT_CONTAINER: a});
        }
        p
    }

    #[test]
    fn container_named_must_be_in_the_pod() {
        let p = pod(&["app", "side"], &["setup"], None);
        assert_eq!(pick_container(&p, "web", Some("side")).unwrap(), "side");
        assert_eq!(pick_container(&p, "web", Some("setup")).unwrap(), "setup");
        let e = pick_container(&p, "web", Some("db")).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "container db is not valid for pod web")
        );
    }

    #[test]
    fn container_defaults_to_the_only_one_then_the_annotation() {
        assert_eq!(
            pick_container(&pod(&["app"], &[], None), "web", None).unwrap(),
            "app"
        );
        assert_eq!(
            pick_container(&pod(&["app"], &[], None), "web", Some("")).unwrap(),
            "app"
        );
        let p = pod(&["app", "side"], &[], Some("side"));
        assert_eq!(pick_container(&p, "web", None).unwrap(), "side");
        // An annotation naming no container does not count.
        let p = pod(&["app", "side"], &["setup"], Some("gone"));
        let e = pick_container(&p, "web", None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod web, choose one of: [app side] or one of the init containers: [setup]"
        );
    }

    #[test]
    fn agent_address_prefers_the_internal_ip() {
        let node = |addresses: Value, port: Value| json!({"status": {"addresses": addresses, "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
        let both = json!([{"type": "Hostname", "address": "host-a"}, {"type": "InternalIP", "address": "10.0.0.5"}]);
        assert_eq!(
            agent_address(&node(both, json!(10250))).as_deref(),
            Some("10.0.0.5:10250")
        );
        let host = json!([{"type": "Hostname", "address": "host-a"}]);
        assert_eq!(
            agent_address(&node(host.clone(), json!(7))).as_deref(),
            Some("host-a:7")
        );
        let v6 = json!([{"type": "InternalIP", "address": "fd00::5"}]);
        assert_eq!(
            agent_address(&node(v6, json!(10250))).as_deref(),
            Some("[fd00::5]:10250")
        );
        assert_eq!(agent_address(&node(host.clone(), json!(0))), None);
        assert_eq!(agent_address(&node(host, Value::Null)), None);
        assert_eq!(agent_address(&node(json!([]), json!(10250))), None);
    }

    #[test]
    fn agent_pin_is_required_and_must_be_a_sha256() {
        let node =
            |annotations: Value| json!({"metadata": {"name": "n", "annotations": annotations}});
        let pin = "AB".repeat(32);
        assert_eq!(
            agent_pin(&node(json!({CERTIFICATE_ANNOTATION: pin})), "n").unwrap(),
            [0xab; 32]
        );
        let e = agent_pin(&node(Value::Null), "n").unwrap_err();
        assert_eq!(e.code, 503);
        assert!(
            e.message
                .starts_with("node n has no nuage.io/agent-certificate-sha256 annotation"),
            "{}",
            e.message
        );
        let e = agent_pin(&node(json!({CERTIFICATE_ANNOTATION: "abc"})), "n").unwrap_err();
        assert_eq!(e.code, 503);
        assert!(
            e.message
                .contains("invalid nuage.io/agent-certificate-sha256 annotation \"abc\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn server_name_is_the_address_or_a_fixed_name() {
        let ip = |s: &str| ServerName::IpAddress(s.parse::<std::net::IpAddr>().unwrap().into());
        assert_eq!(server_name("10.0.0.5:10250"), ip("10.0.0.5"));
        assert_eq!(server_name("[fd00::5]:10250"), ip("fd00::5"));
        assert_eq!(
            server_name("host-a:7"),
            ServerName::try_from("host-a").unwrap()
        );
        assert_eq!(
            server_name("bad_name!:7"),
            ServerName::try_from("nuage-agent").unwrap()
        );
    }

    #[test]
    fn agent_query_keeps_only_what_the_agent_reads() {
        let q = Query::parse(Some(
            "container=app&command=sh&command=-c&command=echo%20a%26b&stdin=true&tty=true&pretty=1",
        ));
        assert_eq!(
            agent_query(&q, EXEC_PARAMS),
            "command=sh&command=-c&command=echo+a%26b&stdin=true&tty=true"
        );
        let q = Query::parse(Some(
            "container=app&follow=true&tailLines=10&timestamps=true",
        ));
        assert_eq!(
            agent_query(&q, LOG_PARAMS),
            "follow=true&timestamps=true&tailLines=10"
        );
        assert_eq!(agent_query(&Query::parse(None), LOG_PARAMS), "");
    }
}
