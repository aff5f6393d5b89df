use cano::prelude::*;

#[derive(FromResources)]
struct Empty {}

fn main() {}
