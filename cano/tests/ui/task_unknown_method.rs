use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Helper;

#[task(state = Step)]
impl Helper {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(self.next()))
    }

    fn next(&self) -> Step {
        Step::Done
    }
}

fn main() {}
