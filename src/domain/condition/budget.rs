//! What a condition may cost. The `cel` crate has no cost limit or interrupt hook, so tidings
//! bounds evaluation itself, in two places:
//!
//! - **At save** (`check`): a static estimate over the parsed program refuses a
//!   comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) over event data nested
//!   inside another one over event data — its cost grows with the square of the list — and a
//!   program of more than `MAX_NODES` nodes.
//! - **At run time** (`instrument` and `Meter`): the compiled program is rewritten so that
//!   every comprehension charges the size of the list or map it is about to iterate and one
//!   step per iteration, every `in` charges the size of the container it scans, and every
//!   `+` or named function charges one step plus the size of what it made. A run that
//!   passes `Budget::steps` or `Budget::time` (read at every charge) stops with a
//!   `condition_error` that says the budget ran out. Stored rules saved before the
//!   static check existed are instrumented the same way, so they are cut off too.
//!
//! The rewrite only adds calls to two functions whose names CEL source cannot spell (`@…`),
//! and leaves the shapes the interpreter recognises (a macro's loop step and accumulator)
//! untouched, so `map` and `filter` keep building their result in place.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cel::common::ast::{ComprehensionExpr, EntryExpr, Expr, IdedExpr, operators};
use cel::common::types::{CelBytes, CelString};
use cel::common::value::{CowVal, Val};
use cel::{ExecutionError, FunctionContext};

/// A function for a `cel::Context`: the crate's own `Function` type, which it does not export.
pub(super) type Function = Box<
    dyn for<'c, 'v> Fn(&mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError>
        + Send
        + Sync,
>;

/// Most nodes a condition's program may have (a long `a || b || …` chain is fine; a program
/// this size still evaluates in well under a millisecond).
pub const MAX_NODES: usize = 1000;

/// How much one evaluation may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Steps: one per loop iteration and per `+` or function call, plus one per element of
    /// every list or map a comprehension iterates, `in` scans or a call makes, plus one per
    /// `STRING_BYTES_PER_STEP` bytes of text a call makes. Counted, so the same event and
    /// condition always get the same verdict.
    pub steps: u64,
    /// Wall-clock cut-off, the backstop for work the count cannot see (a regular expression
    /// over a long text, deep equality of nested values). Checked at every step.
    pub time: Duration,
}

impl Budget {
    /// 50 000 steps lets a short predicate run over a list of about 20 000 elements (each
    /// is charged when the list is iterated and again for its iteration): far beyond a
    /// clinic's event, and a few milliseconds at most. 50 ms is the backstop: reached only
    /// by work the count does not see, and still short enough that a few such rules cannot
    /// hold ingest up.
    pub const DEFAULT: Self = Self {
        steps: 50_000,
        time: Duration::from_millis(50),
    };
}

/// Text a call makes is charged per this many bytes: copying them costs about one step.
const STRING_BYTES_PER_STEP: u64 = 64;

/// Charges its argument's size, then hands it back: wraps comprehension ranges and `in`
/// containers, before they are iterated.
pub(super) const CHARGE_SIZE: &str = "@tidings_size";
/// Charges one step plus the size of what a call made, then hands it back.
pub(super) const CHARGE_STEP: &str = "@tidings_step";

/// One evaluation's spending. Shared with the two charging functions of its context.
pub(super) struct Meter {
    budget: Budget,
    started: Instant,
    used: Mutex<Spent>,
}

#[derive(Default)]
struct Spent {
    steps: u64,
    exhausted: Option<Exhausted>,
}

#[derive(Clone, Copy)]
enum Exhausted {
    Steps,
    Time,
}

impl Meter {
    pub(super) fn new(budget: Budget) -> Self {
        Self {
            budget,
            started: Instant::now(),
            used: Mutex::new(Spent::default()),
        }
    }

    fn charge(&self, steps: u64) -> Result<(), ExecutionError> {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if used.exhausted.is_none() {
            used.steps = used.steps.saturating_add(steps);
            if used.steps > self.budget.steps {
                used.exhausted = Some(Exhausted::Steps);
            } else if self.started.elapsed() > self.budget.time {
                used.exhausted = Some(Exhausted::Time);
            }
        }
        match used.exhausted {
            None => Ok(()),
            Some(_) => Err(ExecutionError::function_error(
                "budget",
                "the condition ran out of its evaluation budget",
            )),
        }
    }

    /// Why the run was stopped, for the admin; None if it ran within budget. Checked after
    /// the run whatever it returned: `||` and `&&` can swallow the error that stopped it.
    pub(super) fn exhausted(&self) -> Option<String> {
        let used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        used.exhausted.map(|why| match why {
            Exhausted::Steps => format!(
                "the condition ran out of its evaluation budget ({} steps): it iterates too \
                 much of this event's data",
                self.budget.steps
            ),
            Exhausted::Time => format!(
                "the condition ran out of its evaluation budget ({} ms)",
                self.budget.time.as_millis()
            ),
        })
    }

    /// The two charging functions, for the evaluation's context.
    pub(super) fn functions(meter: &std::sync::Arc<Self>) -> [(&'static str, Function); 2] {
        let m = std::sync::Arc::clone(meter);
        let size: Function = Box::new(move |ftx: &mut FunctionContext| {
            let value = take_argument(ftx)?;
            m.charge(size_of(value.as_ref()))?;
            Ok(value)
        });
        let m = std::sync::Arc::clone(meter);
        let step: Function = Box::new(move |ftx: &mut FunctionContext| {
            let value = take_argument(ftx)?;
            m.charge(1 + size_of(value.as_ref()))?;
            Ok(value)
        });
        [(CHARGE_SIZE, size), (CHARGE_STEP, step)]
    }
}

fn take_argument<'c, 'v>(
    ftx: &mut FunctionContext<'c, 'v>,
) -> Result<CowVal<'c, 'v>, ExecutionError> {
    ftx.args
        .pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))
}

/// Elements of a list or map, or bytes of text over `STRING_BYTES_PER_STEP`; 0 for scalars.
/// Each is O(1): a string's `size()` would count its characters.
fn size_of(value: &dyn Val) -> u64 {
    if let Some(s) = value.downcast_ref::<CelString>() {
        return s.inner().len() as u64 / STRING_BYTES_PER_STEP;
    }
    if let Some(b) = value.downcast_ref::<CelBytes>() {
        return b.inner().len() as u64 / STRING_BYTES_PER_STEP;
    }
    value
        .as_sizer()
        .map_or(0, |s| u64::try_from(*s.size().inner()).unwrap_or(0))
}

fn wrap(function: &str, expr: IdedExpr) -> IdedExpr {
    // Ids only place nodes in the source; these calls have no place of their own.
    let id = expr.id;
    IdedExpr {
        id,
        expr: Expr::Call(cel::common::ast::CallExpr {
            func_name: function.to_owned(),
            target: None,
            args: vec![expr],
        }),
    }
}

/// The program with its charges added (see the module comment).
pub(super) fn instrument(expr: IdedExpr) -> IdedExpr {
    let IdedExpr { id, expr } = expr;
    match expr {
        Expr::Call(mut call) => {
            call.target = call.target.map(|t| Box::new(instrument(*t)));
            call.args = call.args.into_iter().map(instrument).collect();
            if call.func_name == operators::IN
                && let Some(container) = call.args.pop()
            {
                call.args.push(wrap(CHARGE_SIZE, container));
            }
            let call = IdedExpr {
                id,
                expr: Expr::Call(call),
            };
            if is_cheap(&call) {
                call
            } else {
                wrap(CHARGE_STEP, call)
            }
        }
        Expr::Comprehension(c) => IdedExpr {
            id,
            expr: Expr::Comprehension(Box::new(instrument_comprehension(*c))),
        },
        Expr::List(mut list) => {
            list.elements = list.elements.into_iter().map(instrument).collect();
            IdedExpr {
                id,
                expr: Expr::List(list),
            }
        }
        Expr::Map(mut map) => {
            for entry in &mut map.entries {
                if let EntryExpr::MapEntry(e) = &mut entry.expr {
                    e.key = instrument(std::mem::take(&mut e.key));
                    e.value = instrument(std::mem::take(&mut e.value));
                }
            }
            IdedExpr {
                id,
                expr: Expr::Map(map),
            }
        }
        Expr::Struct(mut s) => {
            for entry in &mut s.entries {
                if let EntryExpr::StructField(f) = &mut entry.expr {
                    f.value = instrument(std::mem::take(&mut f.value));
                }
            }
            IdedExpr {
                id,
                expr: Expr::Struct(s),
            }
        }
        Expr::Select(mut select) => {
            select.operand = Box::new(instrument(*select.operand));
            IdedExpr {
                id,
                expr: Expr::Select(select),
            }
        }
        expr @ (Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified) => IdedExpr { id, expr },
    }
}

/// A macro's comprehension: its range is charged by size; inside its loop step only what
/// the admin wrote is instrumented. The nodes the macro made around it (those that take the
/// accumulator, and the `[x]` a `map` or `filter` appends) keep their shape, and the loop
/// condition, initial value and result are the macro's own.
fn instrument_comprehension(mut c: ComprehensionExpr) -> ComprehensionExpr {
    c.iter_range = wrap(CHARGE_SIZE, instrument(c.iter_range));
    c.loop_step = instrument_step(c.loop_step, &c.accu_var);
    c
}

fn instrument_step(expr: IdedExpr, accu: &str) -> IdedExpr {
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(name) if name == accu);
    match expr.expr {
        Expr::Call(mut call) if call.target.is_none() && call.args.iter().any(is_accu) => {
            let appends = call.func_name == operators::ADD;
            call.args = call
                .args
                .into_iter()
                .map(|arg| match arg.expr {
                    _ if is_accu(&arg) => arg,
                    Expr::List(mut list) if appends => {
                        list.elements = list.elements.into_iter().map(per_iteration).collect();
                        IdedExpr {
                            id: arg.id,
                            expr: Expr::List(list),
                        }
                    }
                    _ => instrument_step(arg, accu),
                })
                .collect();
            IdedExpr {
                id: expr.id,
                expr: Expr::Call(call),
            }
        }
        // A guarded `map`/`filter` step or `exists_one`'s: `guard ? accu + [x] : accu`.
        Expr::Call(mut call)
            if call.func_name == operators::CONDITIONAL
                && call.args.last().is_some_and(is_accu) =>
        {
            call.args = call
                .args
                .into_iter()
                .map(|arg| instrument_step(arg, accu))
                .collect();
            IdedExpr {
                id: expr.id,
                expr: Expr::Call(call),
            }
        }
        other => per_iteration(IdedExpr {
            id: expr.id,
            expr: other,
        }),
    }
}

/// What the admin wrote inside a loop: charged once per iteration (so a loop whose body
/// calls nothing is still counted, and the clock is read every iteration).
fn per_iteration(expr: IdedExpr) -> IdedExpr {
    wrap(CHARGE_STEP, instrument(expr))
}

/// Operators on scalars, the bulk of any condition, go uncharged: a charge is itself a call,
/// which would cost more than they do. What they do is bounded anyway — by the charge in
/// the loop around them, or outside loops by `MAX_NODES`. `+` (which can build a list or
/// text as long as its operands), `in` (which scans its container) and named functions
/// (`matches`, `contains`, `size`…) are charged.
fn is_cheap(call: &IdedExpr) -> bool {
    const CHEAP: [&str; 19] = [
        operators::CONDITIONAL,
        operators::LOGICAL_AND,
        operators::LOGICAL_OR,
        operators::LOGICAL_NOT,
        operators::NOT_STRICTLY_FALSE,
        operators::EQUALS,
        operators::NOT_EQUALS,
        operators::LESS,
        operators::LESS_EQUALS,
        operators::GREATER,
        operators::GREATER_EQUALS,
        operators::SUBSTRACT,
        operators::MULTIPLY,
        operators::DIVIDE,
        operators::MODULO,
        operators::NEGATE,
        operators::INDEX,
        operators::OPT_INDEX,
        operators::OPT_SELECT,
    ];
    matches!(&call.expr, Expr::Call(c) if CHEAP.contains(&c.func_name.as_str()))
}

/// The static estimate made at save: refuses what would cost the square of an event's list
/// (or more), and programs over `MAX_NODES` nodes. `source` places the refusal.
pub(super) fn check(root: &IdedExpr, source: &cel::common::ast::SourceInfo) -> Result<(), String> {
    let mut nodes = 0;
    let mut nested = None;
    walk(root, 0, &mut nodes, &mut nested);
    if let Some((id, kind)) = nested {
        let place = source
            .offset_for(id)
            .map(|(start, _)| format!(" at line:column {}", line_column(&source.source, start)))
            .unwrap_or_default();
        return Err(format!(
            "`{kind}`{place} runs over event data inside another comprehension over event \
             data, so its cost grows with the square of the list's length; evaluate each \
             list once (e.g. compare with `in`, or test the two lists separately)"
        ));
    }
    if nodes > MAX_NODES {
        return Err(format!(
            "is too complex: {nodes} parts, at most {MAX_NODES}; split it across rules"
        ));
    }
    Ok(())
}

/// Counts nodes and notes the first comprehension over non-literal data nested within the
/// loop of another (`loops`: how many enclosing loops run over such data).
fn walk(e: &IdedExpr, loops: u32, nodes: &mut usize, nested: &mut Option<(u64, &'static str)>) {
    *nodes += 1;
    match &e.expr {
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                walk(t, loops, nodes, nested);
            }
            for a in &call.args {
                walk(a, loops, nodes, nested);
            }
        }
        Expr::Comprehension(c) => {
            let over_data = !matches!(c.iter_range.expr, Expr::List(_) | Expr::Map(_));
            if over_data && loops > 0 && nested.is_none() {
                *nested = Some((e.id, macro_name(c)));
            }
            walk(&c.iter_range, loops, nodes, nested);
            let inner = loops + u32::from(over_data);
            walk(&c.loop_cond, inner, nodes, nested);
            walk(&c.loop_step, inner, nodes, nested);
            walk(&c.result, loops, nodes, nested);
        }
        Expr::List(l) => {
            for x in &l.elements {
                walk(x, loops, nodes, nested);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(x) = &entry.expr {
                    walk(&x.key, loops, nodes, nested);
                    walk(&x.value, loops, nodes, nested);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(f) = &entry.expr {
                    walk(&f.value, loops, nodes, nested);
                }
            }
        }
        Expr::Select(s) => walk(&s.operand, loops, nodes, nested),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Which macro made a comprehension, told by its initial accumulator (the expansions in the
/// `cel` crate's parser).
fn macro_name(c: &ComprehensionExpr) -> &'static str {
    use cel::common::ast::LiteralValue;
    match &c.accu_init.expr {
        Expr::Literal(LiteralValue::Boolean(b)) if *b.inner() => "all",
        Expr::Literal(LiteralValue::Boolean(_)) => "exists",
        Expr::Literal(LiteralValue::Int(_)) => "exists_one",
        _ if matches!(c.loop_step.expr, Expr::Call(ref call) if call.func_name == operators::CONDITIONAL) => {
            "filter"
        }
        _ => "map",
    }
}

fn line_column(source: &str, offset: u32) -> String {
    let offset = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{column}")
}
