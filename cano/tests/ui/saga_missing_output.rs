use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Reserve;

#[saga::task(state = Step)]
impl Reserve {
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, u32), CanoError> {
        Ok((TaskResult::Single(Step::Done), 1))
    }

    async fn compensate(&self, _res: &Resources, _output: u32) -> Result<(), CanoError> {
        Ok(())
    }
}

// Every problem of one impl is reported at once.
struct Everything;

#[saga::task(state = Step)]
impl Everything {
    type Extra = ();

    fn helper(&self) {}
}

fn main() {}
