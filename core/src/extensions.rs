//! Protocol extensions and their negotiation.
//!
//! The reference protocol has no request ids and no way to free an object.
//! Ours adds both, but a stock `simplerpyc` peer must never see a message or a
//! field it does not know. So extensions are negotiated before the first
//! frame: a client that speaks them offers them in the HTTP upgrade request
//! header [`HEADER`] (`simplerpc-extensions: release, request-id, promise, tuple, stats`); a server
//! that speaks them answers with the subset it accepts in the same response
//! header. A stock client sends no such header, and a stock server answers
//! none, so either way a stock peer gets exactly the reference protocol.
//! Transports other than WebSocket carry the same header value in whatever
//! handshake they have, or configure both ends alike.

/// The HTTP header, in requests and in responses, that carries the extension list.
pub const HEADER: &str = "simplerpc-extensions";

/// A set of protocol extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Extensions(u32);

const NAMES: [(Extensions, &str); 5] = [
    (Extensions::RELEASE, "release"),
    (Extensions::REQUEST_IDS, "request-id"),
    (Extensions::PROMISE, "promise"),
    (Extensions::TUPLE, "tuple"),
    (Extensions::STATS, "stats"),
];

impl Extensions {
    /// No extensions: the reference protocol exactly.
    pub const NONE: Extensions = Extensions(0);
    /// `release`: a request may carry `"release": [obj_id, ...]`, the ids the
    /// client dropped since its previous request; the server frees them once
    /// it has handled the request. Costs no round trip of its own.
    pub const RELEASE: Extensions = Extensions(1);
    /// `request-id`: each request carries `"id": n` and its response echoes
    /// it, so a client with many requests in flight can check the pairing.
    pub const REQUEST_IDS: Extensions = Extensions(2);
    /// `promise`: promise pipelining. Where a request may name an object (its
    /// `obj_id`, a reference in its arguments or key) it may name instead the
    /// result of an earlier request of the connection whose answer has not
    /// arrived, as `{"__rpc_promise__": n}` with `n` that request's id, so a
    /// chain of calls costs one round trip. A request built on a failed one
    /// is not run: it fails with the same error, marked `"cause": n` with
    /// the id of the request that failed first. Needs `request-id`.
    pub const PROMISE: Extensions = Extensions(4);
    /// `tuple`: tuples stay tuples. A tuple travels, in both directions and
    /// at any depth (arguments, keys, map keys, materialized values), as the
    /// marker map `{"__tuple__": [items...]}` (one str key, its value an
    /// array) and decodes to [`Value::Tuple`](crate::Value::Tuple). Without
    /// it a tuple is a plain msgpack array, as the reference sends it, and a
    /// map `{"__tuple__": [...]}` from the peer is just a map.
    pub const TUPLE: Extensions = Extensions(8);
    /// `stats`: the client may send `{"type": "stats"}`; the server session
    /// answers it itself (the executor never sees it) with a value, the map
    /// `{"live_objects": n, "requests": m}`: how many objects the client
    /// holds ids for once the releases the request carries are applied, and
    /// how many requests the session has handled, this one included (see
    /// [`SessionStats`](crate::message::SessionStats)). So a user can see
    /// that dropped proxies are freed. A stock peer never sees the request:
    /// building it without this extension fails.
    pub const STATS: Extensions = Extensions(16);
    /// Everything this version speaks.
    pub const ALL: Extensions = Extensions(31);

    /// The set as bits (`RELEASE` is 1, `REQUEST_IDS` is 2, `PROMISE` is 4,
    /// `TUPLE` is 8, `STATS` is 16), for C callers.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// A set from bits; bits this version does not know are dropped.
    pub fn from_bits(bits: u32) -> Extensions {
        Extensions(bits & Self::ALL.0)
    }

    /// Whether the `release` extension is on.
    pub fn release(self) -> bool {
        self.0 & Self::RELEASE.0 != 0
    }

    /// Whether the `request-id` extension is on.
    pub fn request_ids(self) -> bool {
        self.0 & Self::REQUEST_IDS.0 != 0
    }

    /// Whether the `promise` extension is on (it is only with `request-id`).
    pub fn promises(self) -> bool {
        self.0 & Self::PROMISE.0 != 0 && self.request_ids()
    }

    /// Whether the `tuple` extension is on: tuples travel as the marker
    /// `{"__tuple__": [...]}` and decode to [`Value::Tuple`](crate::Value::Tuple).
    pub fn tuples(self) -> bool {
        self.0 & Self::TUPLE.0 != 0
    }

    /// Whether the `stats` extension is on: the `stats` request may be sent.
    pub fn stats(self) -> bool {
        self.0 & Self::STATS.0 != 0
    }

    /// The extensions of `self` that `other` does not hold.
    pub fn without(self, other: Extensions) -> Extensions {
        Extensions(self.0 & !other.0)
    }

    /// The extensions both sets hold.
    pub fn intersect(self, other: Extensions) -> Extensions {
        Extensions(self.0 & other.0)
    }

    /// Parse a header value; names this version does not know are ignored.
    pub fn parse(header: &str) -> Extensions {
        let mut set = 0;
        for token in header.split(',').map(str::trim) {
            if let Some((e, _)) = NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(token)) {
                set |= e.0;
            }
        }
        Extensions(set)
    }

    /// The header value naming this set (empty for [`Extensions::NONE`]).
    pub fn header_value(self) -> String {
        NAMES
            .iter()
            .filter(|(e, _)| self.0 & e.0 != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Server side: what to accept, given the client's header (`None` when it
    /// sent none, as a stock client does) and what this server supports.
    pub fn negotiate(offered: Option<&str>, supported: Extensions) -> Extensions {
        let set = offered.map_or(Extensions::NONE, |h| {
            Extensions::parse(h).intersect(supported)
        });
        // Promises name requests by id: without ids there are none.
        if set.request_ids() {
            set
        } else {
            Extensions(set.0 & !Self::PROMISE.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(
            Extensions::negotiate(None, Extensions::ALL),
            Extensions::NONE
        );
        let offer = Extensions::ALL.header_value();
        assert_eq!(offer, "release, request-id, promise, tuple, stats");
        assert_eq!(
            Extensions::negotiate(Some(&offer), Extensions::ALL),
            Extensions::ALL
        );
        assert_eq!(
            Extensions::negotiate(Some("request-id, future-thing"), Extensions::ALL),
            Extensions::REQUEST_IDS
        );
        assert_eq!(
            Extensions::negotiate(Some(&offer), Extensions::RELEASE),
            Extensions::RELEASE
        );
        assert!(Extensions::NONE.header_value().is_empty());
        assert_eq!(
            Extensions::negotiate(Some("release, promise"), Extensions::ALL),
            Extensions::RELEASE,
            "no promises without request ids"
        );
    }

    #[test]
    fn tuple_is_negotiated_on_its_own() {
        // Offered and supported: on, with or without the others.
        let t = Extensions::negotiate(Some("tuple"), Extensions::ALL);
        assert_eq!(t, Extensions::TUPLE);
        assert!(t.tuples() && !t.request_ids() && !t.release());
        assert!(Extensions::negotiate(Some("release, Tuple"), Extensions::ALL).tuples());
        // A stock client offers nothing; an older simplerpc client offers
        // the three first ones: no tuples for either.
        assert!(!Extensions::negotiate(None, Extensions::ALL).tuples());
        assert!(
            !Extensions::negotiate(Some("release, request-id, promise"), Extensions::ALL).tuples()
        );
        // A server that leaves it out (a C executor that did not ask for it).
        let no_tuple = Extensions::ALL.without(Extensions::TUPLE);
        assert_eq!(
            Extensions::negotiate(Some(&Extensions::ALL.header_value()), no_tuple),
            no_tuple
        );
        assert_eq!(Extensions::TUPLE.bits(), 8);
        assert_eq!(Extensions::from_bits(8 | 64), Extensions::TUPLE);
        assert_eq!(Extensions::STATS.bits(), 16);
        assert!(Extensions::negotiate(Some("stats"), Extensions::ALL).stats());
        assert!(!Extensions::negotiate(None, Extensions::ALL).stats());
    }
}
