//! Typed values end to end: a Rust registry server whose functions take and
//! return the user's own serde types, and a Rust client that calls them
//! with tuples and keyword pairs and reads the results as those types.
//!
//! ```text
//! cargo run -p simplerpc-ws --example typed_client
//! ```
//!
//! The same code runs as a test (`transport-ws/tests/typed.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use simplerpc_registry::{Class, Instance, Module, Registry, Serde};
use simplerpc_ws::ndarray::{Array1, Array2};
use simplerpc_ws::{Client, ClientConfig, Error, Server, ServerConfig};

/// An action: unit variants travel as their name (`"Left"`), the others as
/// a map of one entry (`{"Jump": {"to": [1, 2]}}`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// One cell left.
    Left,
    /// One cell right.
    Right,
    /// To a cell.
    Jump {
        /// `(row, column)`
        to: (usize, usize),
    },
}

/// What the world says about a step besides the observation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Info {
    /// `(row, column)` of the agent.
    pub pos: (usize, usize),
    /// How often each action was taken.
    pub counts: HashMap<String, u32>,
}

/// A step result: a struct with an `ndarray` field, a Python `dict` to a
/// Python client.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Step {
    /// The grid, 1 where the agent is.
    pub obs: Array2<u8>,
    /// The reward.
    pub reward: f32,
    /// Whether the episode is over.
    pub done: bool,
    /// The rest.
    pub info: Info,
}

/// The arguments of `make`, as keyword pairs or a struct.
#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
pub struct Size {
    /// rows
    pub rows: usize,
    /// columns
    pub cols: usize,
}

struct Grid {
    size: Size,
    pos: (usize, usize),
    counts: HashMap<String, u32>,
}

impl Grid {
    fn step(&mut self, action: Action) -> Step {
        let name = match action {
            Action::Left => {
                self.pos.1 = self.pos.1.saturating_sub(1);
                "Left"
            }
            Action::Right => {
                self.pos.1 = (self.pos.1 + 1).min(self.size.cols - 1);
                "Right"
            }
            Action::Jump { to } => {
                self.pos = (to.0.min(self.size.rows - 1), to.1.min(self.size.cols - 1));
                "Jump"
            }
        };
        *self.counts.entry(name.into()).or_default() += 1;
        let mut obs = Array2::<u8>::zeros((self.size.rows, self.size.cols));
        obs[self.pos] = 1;
        let done = self.pos == (self.size.rows - 1, self.size.cols - 1);
        Step {
            obs,
            reward: if done { 1.0 } else { -0.1 },
            done,
            info: Info {
                pos: self.pos,
                counts: self.counts.clone(),
            },
        }
    }
}

/// The server's registry: module `grid` with `make(rows, cols)` returning
/// an environment whose `step(action)` returns a [`Step`], and `scale(a, k)`
/// on a float array.
pub fn registry() -> Registry {
    let grid = Class::<Grid>::new("Grid")
        .method("step", |g: &mut Grid, Serde(a): Serde<Action>| {
            Serde(g.step(a))
        })
        .build();
    Registry::new().module(
        Module::new("grid")
            .function("make", move |Serde(size): Serde<Size>| {
                Instance::new(
                    &grid,
                    Grid {
                        size,
                        pos: (0, 0),
                        counts: HashMap::new(),
                    },
                )
            })
            .function("scale", |Serde(a): Serde<Array1<f64>>, k: f64| Serde(a * k)),
    )
}

/// What [`run`] saw.
#[derive(Debug)]
pub struct Summary {
    /// The steps taken, as read by the client.
    pub steps: Vec<Step>,
    /// The scaled array.
    pub scaled: Array1<f64>,
    /// The error of reading a step as the wrong type.
    pub wrong_type: String,
}

/// Serve [`registry`] on a free port of 127.0.0.1, connect, and play.
pub fn run() -> Result<Summary, Error> {
    let registry = Arc::new(registry());
    let server = Server::bind(
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            ..ServerConfig::default()
        },
        move |_| registry.executor(),
    )?
    .spawn()?;
    let client = Client::connect(&ClientConfig::new(
        "127.0.0.1",
        server.local_addr().port(),
        server.token(),
    ))?;

    let grid = client.module("grid")?;
    // A struct argument: a map, as a Python caller would pass a dict.
    let env = grid.getattr("make")?.call((Size { rows: 2, cols: 3 },))?;
    let step = env.getattr("step")?;
    let mut steps = Vec::new();
    for action in [Action::Right, Action::Left, Action::Jump { to: (1, 2) }] {
        let s: Step = step.call((action,))?.materialize_as()?;
        let done = s.done;
        steps.push(s);
        if done {
            break;
        }
    }

    // An array in, an array out: Array1 travels as a numpy-style array.
    let scaled: Array1<f64> = grid
        .getattr("scale")?
        .call((Array1::from(vec![1.0, 2.0, 3.0]), 2.0))?
        .materialize_as()?;

    // The wrong type: the error names the field.
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct WrongStep {
        obs: Array2<f32>,
    }
    let wrong_type = match step.call((Action::Left,))?.materialize_as::<WrongStep>() {
        Ok(w) => panic!("read as the wrong type: {w:?}"),
        Err(e) => e.to_string(),
    };

    drop((step, env, grid, client));
    server.shutdown();
    Ok(Summary {
        steps,
        scaled,
        wrong_type,
    })
}

fn main() -> Result<(), Error> {
    let summary = run()?;
    for s in &summary.steps {
        println!(
            "reward {:+.1} done {:5} pos {:?}\n{}",
            s.reward, s.done, s.info.pos, s.obs
        );
    }
    println!("scaled: {}", summary.scaled);
    println!("reading a step as the wrong type: {}", summary.wrong_type);
    Ok(())
}
