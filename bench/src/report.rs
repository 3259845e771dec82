//! The report: one table row per scenario, printed as Markdown.

/// One line of the table.
pub struct Row {
    pub scenario: String,
    pub figure: String,
    pub budget: &'static str,
}

/// Prints the rows as a Markdown table on stdout.
pub fn print_table(rows: Vec<Row>) {
    println!("| scenario | measured | budget |\n|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} |", r.scenario, r.figure, r.budget);
    }
}
