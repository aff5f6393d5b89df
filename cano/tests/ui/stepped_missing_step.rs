use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Stepper;

#[task::stepped(state = Step)]
impl Stepper {
    type Cursor = u32;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
}

fn main() {}
