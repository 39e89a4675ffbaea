//! One client's session: the handshake's sign-in check, then `subscribe` and
//! `unsubscribe` with acknowledgements.
//!
//! Acks use the REST envelope: `{"success": true, "data": {"channels": [...],
//! "version": N}}`, or `{"success": false, "error": {"code", "message"}}`
//! naming the offending channel. `version` is the change version the server
//! had reached: events carry theirs, so a client that refetches from the API
//! after subscribing can drop events it has already seen.

use std::sync::Arc;

use crate::channels::{Channel, ChannelError};
use crate::directory::{Directory, Missing};
use alloy_primitives::Address;
use animoca_api::auth::{AuthConfig, address_of_token};
use serde_json::{Value, json};
use socketioxide::{
    adapter::Adapter,
    extract::{AckSender, SocketRef, TryData},
};

/// What every session shares.
#[derive(Clone)]
pub struct SessionContext {
    /// Existence of markets and proposals; the committed change version.
    pub directory: Directory,
    /// Checks handshake tokens.
    pub auth: AuthConfig,
    /// Channels one connection may hold at once.
    pub max_channels: usize,
}

/// The signed-in address of a connection (`None`: anonymous), stored in the
/// socket's extensions by the handshake check.
#[derive(Debug, Clone, Copy)]
pub struct Viewer(pub Option<Address>);

/// One `subscribe` at a time per connection: its lookups, count and join run in
/// turn, so a client can neither race the channel cap nor keep many database
/// lookups in flight at once.
#[derive(Debug, Clone, Default)]
struct SubscribeTurn(Arc<tokio::sync::Mutex<()>>);

/// Why the handshake is refused (the client's `connect_error` carries the message).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// Why a subscription is refused.
#[derive(Debug, thiserror::Error)]
enum SubscribeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Channel(#[from] ChannelError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("at most {0} channels per connection")]
    TooMany(usize),
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl SubscribeError {
    fn code(&self) -> &'static str {
        match self {
            SubscribeError::BadRequest(_) | SubscribeError::Channel(_) => "BAD_REQUEST",
            SubscribeError::NotFound(_) => "NOT_FOUND",
            SubscribeError::Unauthorized(_) => "UNAUTHORIZED",
            SubscribeError::Forbidden(_) => "FORBIDDEN",
            SubscribeError::TooMany(_) => "TOO_MANY_CHANNELS",
            SubscribeError::Unavailable(_) => "SERVICE_UNAVAILABLE",
        }
    }

    fn ack(&self) -> Value {
        json!({ "success": false, "error": { "code": self.code(), "message": self.to_string() } })
    }
}

/// Handshake middleware: `auth.token`, when present, must be a valid sign-in
/// token (else the connection is refused); no token connects anonymously.
/// An accepted client's event handlers are registered here, before the server
/// answers the connect.
pub async fn authenticate<A: Adapter>(
    context: Arc<SessionContext>,
    socket: SocketRef<A>,
    auth: TryData<Value>,
) -> Result<(), Refused> {
    let token = match &auth.0 {
        Ok(Value::Object(fields)) => match fields.get("token") {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) => Some(token.as_str()),
            Some(_) => return Err(Refused("auth.token must be a string (the JWT from /api/auth/verify)".into())),
        },
        // No auth object at all (`io(url)`): anonymous.
        Ok(Value::Null) | Err(_) => None,
        Ok(_) => return Err(Refused("auth must be an object: { token }".into())),
    };
    let viewer = match token {
        None => None,
        Some(token) => Some(address_of_token(&context.auth, token).map_err(|e| Refused(e.to_string()))?),
    };
    socket.extensions.insert(Viewer(viewer));
    socket.extensions.insert(SubscribeTurn::default());
    // Here, not in the connect handler: that one is spawned after the server
    // has answered the connect, so a client's first `subscribe` could beat it.
    register_handlers(context, &socket);
    Ok(())
}

/// An accepted client: its `subscribe` / `unsubscribe` handlers and the connection gauge.
fn register_handlers<A: Adapter>(context: Arc<SessionContext>, socket: &SocketRef<A>) {
    metrics::gauge!("realtime_connections").increment(1);
    socket.on_disconnect(async |_: SocketRef<A>| metrics::gauge!("realtime_connections").decrement(1));
    let subscribe_context = context.clone();
    socket.on("subscribe", async move |socket: SocketRef<A>, TryData::<Value>(data), ack: AckSender<A>| {
        let reply = match subscribe(&subscribe_context, &socket, data.ok()).await {
            Ok(reply) => reply,
            Err(error) => error.ack(),
        };
        // A client without an ack callback gets nothing back; that is its choice.
        let _ = ack.send(&reply);
    });
    socket.on("unsubscribe", async move |socket: SocketRef<A>, TryData::<Value>(data), ack: AckSender<A>| {
        let reply = match channels_of(data.ok(), context.max_channels) {
            Ok(channels) => {
                let rooms: Vec<String> = channels.iter().map(Channel::room).collect();
                socket.leave(rooms.clone());
                json!({ "success": true, "data": { "channels": rooms } })
            }
            Err(error) => error.ack(),
        };
        let _ = ack.send(&reply);
    });
}

async fn subscribe<A: Adapter>(
    context: &SessionContext,
    socket: &SocketRef<A>,
    data: Option<Value>,
) -> Result<Value, SubscribeError> {
    let channels = channels_of(data, context.max_channels)?;
    let viewer = socket.extensions.get::<Viewer>().and_then(|viewer| viewer.0);
    for channel in &channels {
        if let Channel::User(address) = channel {
            match viewer {
                None => {
                    return Err(SubscribeError::Unauthorized(format!(
                        "{channel}: connect with auth.token (the JWT from /api/auth/verify) to join a user channel"
                    )));
                }
                Some(me) if me != *address => {
                    return Err(SubscribeError::Forbidden(format!(
                        "{channel}: only {me:#x}'s own channel can be joined"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    let turn = socket.extensions.get::<SubscribeTurn>().unwrap_or_default();
    let _turn = turn.0.lock().await;
    for channel in &channels {
        // Boxed: the handler's future stays small while thousands wait to subscribe.
        Box::pin(context.directory.check(channel)).await.map_err(|missing| match missing {
            Missing::Absent => SubscribeError::NotFound(format!("{channel} does not exist")),
            Missing::Unavailable(error) => SubscribeError::Unavailable(error),
        })?;
    }
    let rooms: Vec<String> = channels.iter().map(Channel::room).collect();
    let joined = socket.rooms();
    let total = joined
        .iter()
        .map(|room| room.as_ref())
        .chain(rooms.iter().map(String::as_str))
        .collect::<std::collections::HashSet<_>>()
        .len();
    if total > context.max_channels {
        return Err(SubscribeError::TooMany(context.max_channels));
    }
    socket.join(rooms.clone());
    let version = context.directory.version();
    Ok(json!({ "success": true, "data": { "channels": rooms, "version": version } }))
}

/// The channels of a `subscribe`/`unsubscribe` payload: one name or a list.
fn channels_of(data: Option<Value>, max: usize) -> Result<Vec<Channel>, SubscribeError> {
    let names = match data {
        Some(Value::String(name)) => vec![name],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(SubscribeError::BadRequest("the channel list is empty".into()));
        }
        Some(Value::Array(items)) if items.len() > max => return Err(SubscribeError::TooMany(max)),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(name) => Ok(name),
                other => Err(SubscribeError::BadRequest(format!("channel names are strings, not {other}"))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(SubscribeError::BadRequest("send a channel name or a list of them".into())),
    };
    let mut channels = Vec::with_capacity(names.len());
    for name in &names {
        let channel = Channel::parse(name)?;
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_one_name_or_a_list_of_names() {
        assert_eq!(channels_of(Some(json!("markets")), 10).unwrap(), [Channel::Markets]);
        assert_eq!(channels_of(Some(json!(["markets", "proposals", "markets"])), 10).unwrap().len(), 2);
        for (bad, code) in [
            (None, "BAD_REQUEST"),
            (Some(json!(7)), "BAD_REQUEST"),
            (Some(json!([])), "BAD_REQUEST"),
            (Some(json!(["markets", 1])), "BAD_REQUEST"),
            (Some(json!("nope")), "BAD_REQUEST"),
            (Some(json!(vec!["markets"; 11])), "TOO_MANY_CHANNELS"),
        ] {
            assert_eq!(channels_of(bad.clone(), 10).unwrap_err().code(), code, "{bad:?}");
        }
    }
}
