use cano::prelude::*;

struct Messy;

#[task(flavor = "spicy")]
impl Messy {
    type Item = u8;

    fn helper(&self) {}

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
}

fn main() {}
