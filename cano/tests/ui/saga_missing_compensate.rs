use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Reserve;

#[saga::task(state = Step)]
impl Reserve {
    type Output = u32;

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, u32), CanoError> {
        Ok((TaskResult::Single(Step::Done), 1))
    }
}

fn main() {}
