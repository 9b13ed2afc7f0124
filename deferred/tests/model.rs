//! Random chains of callbacks, errbacks, failures, panics and returned Deferreds (fired
//! at once or later), fired before, during or after they are built, paused or not, all
//! compared with a plain fold over the same steps.

use std::cell::RefCell;
use std::rc::Rc;

use deferred::{catch_unhandled, fail, succeed, Deferred, Failure, Resolver};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Action {
    Add(i64),
    Fail(u8),
    Panic,
    /// Return a Deferred with this outcome, fired at once or later.
    Inner(bool, Result<i64, u8>),
}

#[derive(Debug, Clone)]
enum Op {
    Callback(Action),
    Errback(Action),
}

type Model = Result<i64, String>;

fn apply(action: &Action, input: i64) -> Model {
    match action {
        Action::Add(k) => Ok(input.wrapping_add(*k)),
        Action::Fail(n) => Err(format!("f{n}")),
        Action::Panic => Err("panicked: p".to_owned()),
        Action::Inner(_, Ok(k)) => Ok(input.wrapping_add(*k)),
        Action::Inner(_, Err(n)) => Err(format!("i{n}")),
    }
}

fn model(start: &Model, ops: &[Op]) -> Model {
    let mut state = start.clone();
    for op in ops {
        state = match (op, &state) {
            (Op::Callback(a), Ok(v)) => apply(a, *v),
            (Op::Errback(a), Err(_)) => apply(a, 0),
            _ => state,
        };
    }
    state
}

type Later = Rc<RefCell<Vec<(Resolver<i64>, Result<i64, u8>)>>>;

fn act(action: &Action, input: i64, later: &Later) -> Deferred<i64> {
    match action.clone() {
        Action::Add(k) => succeed(input.wrapping_add(k)),
        Action::Fail(n) => fail(Failure::msg(format!("f{n}"))),
        Action::Panic => panic!("p"),
        Action::Inner(now, outcome) => {
            let (d, r) = Deferred::new();
            let outcome = outcome.map(|k| input.wrapping_add(k));
            if now {
                fire(&r, outcome);
            } else {
                later.borrow_mut().push((r, outcome));
            }
            d
        }
    }
}

fn fire(r: &Resolver<i64>, outcome: Result<i64, u8>) {
    match outcome {
        Ok(v) => r.callback(v).unwrap(),
        Err(n) => r.errback(Failure::msg(format!("i{n}"))).unwrap(),
    }
}

fn add(d: Deferred<i64>, op: &Op, later: &Later) -> Deferred<i64> {
    let later = later.clone();
    match op.clone() {
        Op::Callback(a) => d.add_callback(move |v| act(&a, v, &later)),
        Op::Errback(a) => d.add_errback(move |_| act(&a, 0, &later)),
    }
}

fn real(start: &Model, ops: &[Op], fire_at: usize, paused: bool) -> Model {
    let later: Later = Rc::default();
    let (mut d, r) = Deferred::<i64>::new();
    if paused {
        d.pause();
    }
    for (i, op) in ops.iter().enumerate() {
        if i == fire_at {
            r.resolve(start.clone().map_err(Failure::msg)).unwrap();
        }
        d = add(d, op, &later);
    }
    if fire_at >= ops.len() {
        r.resolve(start.clone().map_err(Failure::msg)).unwrap();
    }
    if paused {
        d.unpause();
    }
    // Fire the Deferreds returned "for later", as they appear, until none is left.
    for _ in 0..=ops.len() {
        let pending: Vec<_> = later.borrow_mut().drain(..).collect();
        for (r, outcome) in pending {
            fire(&r, outcome);
        }
    }
    match d.take_result() {
        Some(result) => result.map_err(|f| f.to_string()),
        None => Err("never settled".to_owned()),
    }
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (-5i64..5).prop_map(Action::Add),
        2 => (0u8..4).prop_map(Action::Fail),
        1 => Just(Action::Panic),
        3 => (any::<bool>(), prop_oneof![(-5i64..5).prop_map(Ok), (0u8..4).prop_map(Err)])
            .prop_map(|(now, o)| Action::Inner(now, o)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        action().prop_map(Op::Callback),
        action().prop_map(Op::Errback),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_chains_match_the_model(
        start in prop_oneof![(-5i64..5).prop_map(Ok), Just(Err("start".to_owned()))],
        ops in proptest::collection::vec(op(), 0..24),
        fire_at in 0usize..26,
        paused in any::<bool>(),
    ) {
        let _guard = catch_unhandled();
        std::panic::set_hook(Box::new(|_| {})); // the panics are the point; keep output quiet
        let expected = model(&start, &ops);
        let got = real(&start, &ops, fire_at, paused);
        let _ = std::panic::take_hook();
        prop_assert_eq!(got, expected);
    }
}
