//! The client session: builds request frames and pairs response frames with them.
//!
//! Requests may be pipelined: build several frames with
//! [`ClientSession::send`] before any response arrives; responses come back in
//! order and [`ClientSession::handle_frame`] pairs each with its request (and,
//! with the `request-id` extension, checks the echoed id). Objects the user
//! dropped are queued with [`ClientSession::release`] and ride along on the
//! next request, so freeing costs no round trip of its own.
//!
//! ## Promise pipelining
//!
//! With the `promise` extension a request whose answer nobody waits for is
//! sent with [`ClientSession::send_pipelined`]: it returns at once with a
//! promise ([`ObjId::promise`]) that later requests may name as their object
//! or pass as an argument, so `materialize(env.step(a))` is one round trip.
//! A driver then reads frames with [`ClientSession::receive`] and hands out
//! the answers its callers wait for with [`ClientSession::take`]. The session
//! keeps the rest of the bookkeeping:
//! - the object each pipelined request returned, so a dropped promise
//!   releases the right id (at once if its answer has come, else when it
//!   comes);
//! - the errors of pipelined requests nobody waits for, in order
//!   ([`ClientSession::take_failure`]), so a driver raises each at the next
//!   wait; an error that a waited answer reports as its `cause` (a request
//!   built on the failed one, which the server did not run) is taken with it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bytes::Bytes;

use crate::codec::EncodeError;
use crate::extensions::Extensions;
use crate::message::{
    self, BorrowedFrame, FrameError, OutFrame, RawRequest, RemoteError, Request, Response,
};
use crate::value::{ObjId, RawValue, Value};

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
    /// A pipelined request was sent on a connection without the `promise` extension.
    #[error("the server did not accept the promise extension: wait for each answer instead")]
    NoPromises,
}

/// A response with the bytes of its value as the frame holds them, or why
/// the frame answering the request could not be read.
pub type Answer = Result<(Response, Option<RawValue>), ClientError>;

/// One connection's client state machine.
#[derive(Debug)]
pub struct ClientSession {
    extensions: Extensions,
    next_id: u64,
    in_flight: VecDeque<RequestId>,
    releases: Vec<ObjId>,
    released_total: u64,
    /// Requests sent with `send_pipelined`: nobody takes their answers.
    pipelined: HashSet<u64>,
    /// Answers of waited-for requests that arrived and are not taken yet.
    answers: HashMap<u64, Answer>,
    /// The object each pipelined request returned, while its promise lives.
    settled: HashMap<u64, ObjId>,
    /// Promises dropped before their answer came.
    dropped: HashSet<u64>,
    /// Errors of pipelined requests not reported yet, oldest first.
    failures: BTreeMap<u64, RemoteError>,
    /// The largest request frame this session builds.
    max_frame: usize,
    /// Waited-for requests whose caller gave up: their answers are dropped.
    abandoned: HashSet<u64>,
    /// A written frame to build the next large one in (see [`ClientSession::recycle`]).
    spare: Option<Vec<u8>>,
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
            pipelined: HashSet::new(),
            answers: HashMap::new(),
            settled: HashMap::new(),
            dropped: HashSet::new(),
            failures: BTreeMap::new(),
            max_frame: usize::MAX,
            abandoned: HashSet::new(),
            spare: None,
        }
    }

    /// Refuse to build request frames larger than `limit` bytes (the
    /// connection's message limit): such a request fails with
    /// [`EncodeError::TooLarge`] before anything is built or counted.
    pub fn set_max_frame(&mut self, limit: usize) {
        self.max_frame = limit;
    }

    fn check_size(&self, size: usize) -> Result<(), EncodeError> {
        if size > self.max_frame {
            return Err(EncodeError::TooLarge {
                size,
                limit: self.max_frame,
            });
        }
        Ok(())
    }

    /// The extensions this session speaks.
    pub fn extensions(&self) -> Extensions {
        self.extensions
    }

    /// Whether requests may be pipelined on promises (the `promise` extension).
    pub fn promises(&self) -> bool {
        self.extensions.promises()
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

    /// Promises whose object is known and still held, and answers waiting
    /// to be taken: what the session keeps for pipelining (for tests and
    /// leak checks).
    pub fn pipeline_state(&self) -> (usize, usize) {
        (self.settled.len(), self.answers.len())
    }

    /// The user dropped its last reference to `obj`: free it on the server
    /// with the next request. A promise whose answer has not come is freed
    /// when it comes. Against a peer without the `release` extension this
    /// does nothing (the reference server keeps every object until the
    /// client disconnects).
    pub fn release(&mut self, obj: ObjId) {
        if let Some(n) = obj.as_promise() {
            match self.settled.remove(&n) {
                Some(real) => self.release(real),
                None if self.pipelined.contains(&n) => {
                    self.dropped.insert(n);
                }
                // Failed, or never sent: nothing is held.
                None => {}
            }
            return;
        }
        if self.extensions.release() {
            self.releases.push(obj);
        }
    }

    /// The object a promise names, once its answer has come (else `obj` itself).
    pub fn settle(&self, obj: ObjId) -> ObjId {
        obj.as_promise()
            .and_then(|n| self.settled.get(&n).copied())
            .unwrap_or(obj)
    }

    fn next<F>(&mut self, frame: F) -> (RequestId, F) {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.released_total += self.releases.len() as u64;
        self.releases.clear();
        self.in_flight.push_back(id);
        (id, frame)
    }

    /// Refuse a promise this session cannot send: without the `promise`
    /// extension (a stock peer must never see one), or naming a request not
    /// sent yet (a promise from another connection).
    fn check_promise(&self, obj: ObjId) -> Result<(), EncodeError> {
        match obj.as_promise() {
            Some(n) if !self.promises() || n >= self.next_id => Err(EncodeError::Promise(n)),
            _ => Ok(()),
        }
    }

    fn check_request(&self, request: &Request) -> Result<(), EncodeError> {
        let obj = match request {
            Request::GetAttr { obj_id, .. } | Request::Call { obj_id, .. } => *obj_id,
            Request::GetItem { obj_id, .. } | Request::Materialize { obj_id } => Some(*obj_id),
            _ => None,
        };
        if let Some(obj) = obj {
            self.check_promise(obj)?;
        }
        let mut check = |x: &Value| match x {
            Value::Proxy(id) => self.check_promise(*id),
            _ => Ok(()),
        };
        match request {
            Request::Call { args, kwargs, .. } => args
                .iter()
                .chain(kwargs.iter().map(|(_, v)| v))
                .try_for_each(|v| v.walk(&mut check)),
            Request::GetItem { key, .. } => key.walk(&mut check),
            _ => Ok(()),
        }
    }

    /// Hand a request frame this session built, once written, back for
    /// reuse: the next request of about its size is built in it, so a
    /// stream of large requests (arrays sent up each step) takes no fresh
    /// memory each time. One is kept; [`ClientSession::trim`] drops it.
    pub fn recycle(&mut self, frame: Vec<u8>) {
        self.spare = Some(frame);
    }

    /// Drop the frame kept by [`ClientSession::recycle`] (when idle).
    pub fn trim(&mut self) {
        self.spare = None;
    }

    /// Build the frame for `request` in one buffer and count it in flight
    /// (large array payloads copied in; a transport uses
    /// [`ClientSession::send_frame`], which leaves them where they are).
    pub fn send(&mut self, request: &Request) -> Result<(RequestId, Vec<u8>), EncodeError> {
        self.send_frame(request)
            .map(|(id, frame)| (id, frame.into_vec()))
    }

    /// Build the frame for `request` and count it in flight. The payloads of
    /// large arrays and bins are spliced in by reference, not copied (see
    /// [`OutFrame`]). Once it is written, hand [`OutFrame::into_buffer`] to
    /// [`ClientSession::recycle`].
    pub fn send_frame(&mut self, request: &Request) -> Result<(RequestId, OutFrame), EncodeError> {
        self.check_request(request)?;
        let bound = message::request_size_bound(request, self.releases.len());
        self.check_size(bound)?;
        let need = message::request_buffer_len(request, self.releases.len());
        let spare = message::spare_for(&mut self.spare, need);
        let frame = message::encode_request_parts_in(
            request,
            Some(self.next_id),
            &self.releases,
            self.extensions,
            spare,
        )?;
        Ok(self.next(frame))
    }

    /// Build the frame for a request whose value fields are msgpack the
    /// caller already holds (checked, then copied once into the frame), in
    /// one buffer (a transport uses [`ClientSession::send_raw_frame`],
    /// which leaves large array payloads where they are).
    pub fn send_raw(
        &mut self,
        request: &RawRequest<'_>,
    ) -> Result<(RequestId, Vec<u8>), FrameError> {
        self.check_raw(request)?;
        let bound = message::raw_request_size_bound(request, self.releases.len());
        let spare = message::spare_for(&mut self.spare, bound);
        let frame = message::encode_request_raw_in(
            request,
            Some(self.next_id),
            &self.releases,
            self.extensions,
            spare,
        )?;
        Ok(self.next(frame))
    }

    /// As [`ClientSession::send_raw`], with the parts of [`Raw::Parts`]
    /// fields that are whole payloads of large bins (an array's data)
    /// spliced in by reference, not copied (see [`BorrowedFrame`]): the
    /// frame borrows them, so write it before they go. Once it is written,
    /// hand [`BorrowedFrame::into_buffer`] to [`ClientSession::recycle`].
    ///
    /// [`Raw::Parts`]: crate::Raw::Parts
    pub fn send_raw_frame<'a>(
        &mut self,
        request: &RawRequest<'a>,
    ) -> Result<(RequestId, BorrowedFrame<'a>), FrameError> {
        self.check_raw(request)?;
        let need = message::raw_request_buffer_len(request, self.releases.len());
        let spare = message::spare_for(&mut self.spare, need);
        let frame = message::encode_request_raw_parts_in(
            request,
            Some(self.next_id),
            &self.releases,
            self.extensions,
            spare,
        )?;
        Ok(self.next(frame))
    }

    /// Refuse a raw request this session cannot send: a promise it cannot
    /// name, a frame over the size limit.
    fn check_raw(&self, request: &RawRequest<'_>) -> Result<(), FrameError> {
        let obj = match *request {
            RawRequest::Call { obj_id, .. } => obj_id,
            RawRequest::GetItem { obj_id, .. } => Some(obj_id),
        };
        if let Some(obj) = obj {
            self.check_promise(obj)
                .map_err(|e| FrameError::Encode(e.to_string()))?;
        }
        let bound = message::raw_request_size_bound(request, self.releases.len());
        self.check_size(bound)
            .map_err(|e| FrameError::Encode(e.to_string()))
    }

    /// Send `request` without waiting for its answer: the returned promise
    /// stands for the object it will return, in later requests of this
    /// session. Needs the `promise` extension ([`ClientSession::promises`]).
    pub fn send_pipelined(
        &mut self,
        request: &Request,
    ) -> Result<(RequestId, ObjId, Vec<u8>), ClientError> {
        self.send_pipelined_frame(request)
            .map(|(id, promise, frame)| (id, promise, frame.into_vec()))
    }

    /// [`ClientSession::send_pipelined`] with large payloads spliced in (see
    /// [`ClientSession::send_frame`]).
    pub fn send_pipelined_frame(
        &mut self,
        request: &Request,
    ) -> Result<(RequestId, ObjId, OutFrame), ClientError> {
        if !self.promises() {
            return Err(ClientError::NoPromises);
        }
        let (id, frame) = self
            .send_frame(request)
            .map_err(|e| ClientError::Frame(FrameError::Encode(e.to_string())))?;
        self.pipelined.insert(id.0);
        Ok((id, ObjId::promise(id.0), frame))
    }

    /// [`ClientSession::send_pipelined`] for msgpack the caller holds.
    pub fn send_raw_pipelined(
        &mut self,
        request: &RawRequest<'_>,
    ) -> Result<(RequestId, ObjId, Vec<u8>), ClientError> {
        if !self.promises() {
            return Err(ClientError::NoPromises);
        }
        let (id, frame) = self.send_raw(request)?;
        self.pipelined.insert(id.0);
        Ok((id, ObjId::promise(id.0), frame))
    }

    /// [`ClientSession::send_raw_pipelined`] with large parts spliced in
    /// (see [`ClientSession::send_raw_frame`]).
    pub fn send_raw_pipelined_frame<'a>(
        &mut self,
        request: &RawRequest<'a>,
    ) -> Result<(RequestId, ObjId, BorrowedFrame<'a>), ClientError> {
        if !self.promises() {
            return Err(ClientError::NoPromises);
        }
        let (id, frame) = self.send_raw_frame(request)?;
        self.pipelined.insert(id.0);
        Ok((id, ObjId::promise(id.0), frame))
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
    ///
    /// Every answer is handed to the caller, a pipelined request's too (its
    /// object is still noted for its promise). So the error an answer
    /// carries is reported by it: neither a pipelined request's own error
    /// nor the failure an error names as its `cause` is kept for
    /// [`ClientSession::take_failure`] as well.
    pub fn handle_frame_raw(
        &mut self,
        frame: Bytes,
    ) -> Result<(RequestId, Response, Option<RawValue>), ClientError> {
        let expected = self.in_flight.pop_front().ok_or(ClientError::Unsolicited)?;
        let answer = self.decode(expected, frame);
        if self.pipelined.remove(&expected.0) {
            self.note_pipelined(expected.0, &answer);
        }
        self.reported(expected.0, &answer);
        answer.map(|(r, raw)| (expected, r, raw))
    }

    /// The answer of request `n` reaches its caller: the failure it reports
    /// (its own, or the one it names as its cause) is reported now.
    fn reported(&mut self, n: u64, answer: &Answer) {
        match answer {
            Ok((Response::Error(e), _)) => {
                self.failures.remove(&e.cause.get().unwrap_or(n));
            }
            Err(_) => {
                self.failures.remove(&n);
            }
            Ok(_) => {}
        }
    }

    fn decode(&self, expected: RequestId, frame: Bytes) -> Answer {
        let (resp, raw) = message::decode_response_raw_with(&frame, self.extensions)?;
        if let Some(got) = resp.id.filter(|_| self.extensions.request_ids()) {
            if got != expected.0 {
                return Err(ClientError::OutOfOrder {
                    expected: expected.0,
                    got,
                });
            }
        }
        Ok((resp.response, raw))
    }

    /// What a pipelined request's answer leaves behind: its object (or the
    /// release of it, if its promise was dropped meanwhile) or its error.
    fn note_pipelined(&mut self, n: u64, answer: &Answer) {
        let dropped = self.dropped.remove(&n);
        match answer {
            Ok((Response::Object(obj), _)) => {
                if dropped {
                    self.release(*obj);
                } else {
                    self.settled.insert(n, *obj);
                }
            }
            // A request built on a failed one reports that failure, which
            // is already noted (or was reported to whoever waited for it).
            Ok((Response::Error(e), _)) if e.cause.get().is_none() => {
                self.failures.insert(n, e.clone());
            }
            Err(e) => {
                self.failures.insert(
                    n,
                    RemoteError::new("simplerpc.ProtocolError", e.to_string()),
                );
            }
            _ => {}
        }
    }

    /// Read one response frame into the session: a waited-for request's
    /// answer is kept for [`ClientSession::take`], a pipelined one's is
    /// noted (its object, or its error for [`ClientSession::take_failure`]).
    /// Returns the request it answered; `Err` only for a frame that answers
    /// no request.
    pub fn receive(&mut self, frame: Bytes) -> Result<RequestId, ClientError> {
        let expected = self.in_flight.pop_front().ok_or(ClientError::Unsolicited)?;
        let answer = self.decode(expected, frame);
        if self.pipelined.remove(&expected.0) {
            self.note_pipelined(expected.0, &answer);
        } else if self.abandoned.remove(&expected.0) {
            self.drop_answer(answer);
        } else {
            self.answers.insert(expected.0, answer);
        }
        Ok(expected)
    }

    /// The caller of waited-for request `id` gave up on it (a timeout of its
    /// own, a Ctrl-C): its answer is dropped, now if it is here, or when it
    /// comes, and an object it returns is released, so nothing leaks on
    /// either side. The connection stays usable.
    pub fn abandon(&mut self, id: RequestId) {
        if let Some(answer) = self.answers.remove(&id.0) {
            self.drop_answer(answer);
        } else if !self.is_answered(id) && !self.pipelined.contains(&id.0) {
            self.abandoned.insert(id.0);
        }
    }

    fn drop_answer(&mut self, answer: Answer) {
        if let Ok((Response::Object(obj), _)) = answer {
            self.release(obj);
        }
    }

    /// Whether request `id` has been answered (and not yet taken), or is no
    /// longer in flight at all.
    pub fn is_answered(&self, id: RequestId) -> bool {
        // Answers come in request order, so a request is in flight exactly
        // when it was sent and is not older than the oldest in flight: no
        // scan of a long pipeline on every frame read.
        self.answers.contains_key(&id.0)
            || id.0 >= self.next_id
            || self
                .in_flight
                .front()
                .map_or(true, |oldest| oldest.0 > id.0)
    }

    /// The answer of waited-for request `id`, once [`ClientSession::receive`]
    /// has read it. An error caused by a failed pipelined request takes that
    /// failure with it (it is reported now, by this answer).
    pub fn take(&mut self, id: RequestId) -> Option<Answer> {
        let answer = self.answers.remove(&id.0)?;
        self.reported(id.0, &answer);
        Some(answer)
    }

    /// The oldest error of a pipelined request that no answer has reported:
    /// a driver raises it at its next wait, so no error is lost.
    pub fn take_failure(&mut self) -> Option<(RequestId, RemoteError)> {
        self.failures.pop_first().map(|(n, e)| (RequestId(n), e))
    }
}
