// A saga task is not a `Task`: `Workflow::register` names the method to use instead.
use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Reserve,
    Done,
}

struct Reserve;

#[saga::task(state = Step)]
impl Reserve {
    type Output = u32;

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, u32), CanoError> {
        Ok((TaskResult::Single(Step::Done), 1))
    }

    async fn compensate(&self, _res: &Resources, _output: u32) -> Result<(), CanoError> {
        Ok(())
    }
}

fn main() {
    let _ = Workflow::bare()
        .register(Step::Reserve, Reserve)
        .add_exit_state(Step::Done);
}
