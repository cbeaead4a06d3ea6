//! The client session: builds request frames and pairs response frames with them.
//!
//! Requests may be pipelined: build several frames with
//! [`ClientSession::send`] before any response arrives; responses come back in
//! order and [`ClientSession::handle_frame`] pairs each with its request (and,
//! with the `request-id` extension, checks the echoed id). Objects the user
//! dropped are queued with [`ClientSession::release`] and ride along on the
//! next request, so freeing costs no round trip of its own.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::codec::EncodeError;
use crate::extensions::Extensions;
use crate::message::{self, FrameError, RawRequest, Request, Response};
use crate::value::ObjId;
use crate::value::RawValue;

/// Identifies one request of a client session, counting from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Why a response frame could not be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    /// A response arrived with no request in flight.
    #[error("the server sent a response to no request")]
    Unsolicited,
    /// The response is not a valid frame.
    #[error("the server sent an invalid response: {0}")]
    Frame(#[from] FrameError),
    /// The echoed request id is not the oldest request in flight.
    #[error("the server answered request {got} but request {expected} was next")]
    OutOfOrder {
        /// the request that was due
        expected: u64,
        /// the id the response carried
        got: u64,
    },
}

/// One connection's client state machine.
#[derive(Debug)]
pub struct ClientSession {
    extensions: Extensions,
    next_id: u64,
    in_flight: VecDeque<RequestId>,
    releases: Vec<ObjId>,
    released_total: u64,
}

impl ClientSession {
    /// A session speaking the negotiated `extensions`.
    pub fn new(extensions: Extensions) -> Self {
        ClientSession {
            extensions,
            next_id: 0,
            in_flight: VecDeque::new(),
            releases: Vec::new(),
            released_total: 0,
        }
    }

    /// The extensions this session speaks.
    pub fn extensions(&self) -> Extensions {
        self.extensions
    }

    /// Requests sent whose responses have not arrived.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Dropped object ids waiting to ride on the next request.
    pub fn pending_releases(&self) -> usize {
        self.releases.len()
    }

    /// Object ids sent to the server as released so far.
    pub fn released_total(&self) -> u64 {
        self.released_total
    }

    /// The user dropped its last reference to `obj`: free it on the server
    /// with the next request. Against a peer without the `release` extension
    /// this does nothing (the reference server keeps every object until the
    /// client disconnects).
    pub fn release(&mut self, obj: ObjId) {
        if self.extensions.release() {
            self.releases.push(obj);
        }
    }

    /// Build the frame for `request` and count it in flight.
    pub fn send(&mut self, request: &Request) -> Result<(RequestId, Vec<u8>), EncodeError> {
        let id = RequestId(self.next_id);
        let frame = message::encode_request(request, Some(id.0), &self.releases, self.extensions)?;
        self.next_id += 1;
        self.released_total += self.releases.len() as u64;
        self.releases.clear();
        self.in_flight.push_back(id);
        Ok((id, frame))
    }

    /// Build the frame for a request whose value fields are msgpack the
    /// caller already holds (checked, then copied once into the frame).
    pub fn send_raw(
        &mut self,
        request: &RawRequest<'_>,
    ) -> Result<(RequestId, Vec<u8>), FrameError> {
        let id = RequestId(self.next_id);
        let frame =
            message::encode_request_raw(request, Some(id.0), &self.releases, self.extensions)?;
        self.next_id += 1;
        self.released_total += self.releases.len() as u64;
        self.releases.clear();
        self.in_flight.push_back(id);
        Ok((id, frame))
    }

    /// Take one response frame: the response and the request it answers.
    ///
    /// A frame that cannot be decoded still consumes the oldest request (the
    /// server answers each request exactly once), so later responses stay
    /// paired; the error says what was wrong.
    pub fn handle_frame(&mut self, frame: Bytes) -> Result<(RequestId, Response), ClientError> {
        self.handle_frame_raw(frame).map(|(id, r, _)| (id, r))
    }

    /// As [`ClientSession::handle_frame`], and also the bytes of the
    /// response's value (or namespace) as the frame holds them, for callers
    /// that pass the msgpack on rather than use the decoded value.
    pub fn handle_frame_raw(
        &mut self,
        frame: Bytes,
    ) -> Result<(RequestId, Response, Option<RawValue>), ClientError> {
        let expected = self.in_flight.pop_front().ok_or(ClientError::Unsolicited)?;
        let (resp, raw) = message::decode_response_raw(&frame)?;
        if let Some(got) = resp.id.filter(|_| self.extensions.request_ids()) {
            if got != expected.0 {
                return Err(ClientError::OutOfOrder {
                    expected: expected.0,
                    got,
                });
            }
        }
        Ok((expected, resp.response, raw))
    }
}
