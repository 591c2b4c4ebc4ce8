//! The fragment spread graph of a document: which fragments each definition spreads, what an
//! operation reaches through them, the cycles, and an order in which every fragment comes after the
//! fragments it spreads.
//!
//! Limits, validation and planning all follow spreads, and a document controls how long a chain of
//! spreads is (a 64 KiB document holds about two thousand fragments spreading one another). So
//! nothing here recurses along spreads: the graph is walked with explicit stacks and work lists,
//! each fragment once. The only recursion is [`spreads_in`] over the syntax of one definition,
//! which the parser bounds (it refuses selection sets nested more than 64 levels inside one
//! operation or fragment).

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql_parser::{Pos, Positioned};

/// The spreads of every fragment definition of a document, and what follows from them.
pub(crate) struct Graph<'d> {
    /// Direct spreads of each fragment definition, in document order, with the spread's position.
    /// Spreads of fragments that are not defined are kept (validation reports them).
    spreads: HashMap<&'d str, Vec<(&'d str, Pos)>>,
    /// Defined fragments in an order where each comes after every fragment it spreads, except
    /// along a spread that closes a cycle.
    order: Vec<&'d str>,
    /// Each cycle where it closes: the fragments on it, each with the position of the spread
    /// that leads to the next (the last one spreads the first).
    cycles: Vec<Vec<(&'d str, Pos)>>,
}

impl<'d> Graph<'d> {
    /// Builds the graph of `document`'s fragments: one pass over each definition's syntax and one
    /// depth-first walk of the spreads.
    pub fn new(document: &'d ExecutableDocument) -> Self {
        let mut names: Vec<(&'d str, Pos)> = document
            .fragments
            .iter()
            .map(|(name, definition)| (name.as_str(), definition.pos))
            .collect();
        names.sort_by_key(|(_, pos)| *pos);
        let spreads: HashMap<&'d str, Vec<(&'d str, Pos)>> = names
            .iter()
            .map(|(name, _)| {
                let definition = &document.fragments[*name].node;
                (*name, spreads_in(&definition.selection_set.node))
            })
            .collect();
        let mut graph = Graph {
            spreads,
            order: Vec::with_capacity(names.len()),
            cycles: Vec::new(),
        };
        graph.walk(names.iter().map(|(name, _)| *name));
        graph
    }

    /// The direct spreads of fragment `name` (empty if it is not defined).
    pub fn spreads_of(&self, name: &str) -> &[(&'d str, Pos)] {
        self.spreads.get(name).map_or(&[], Vec::as_slice)
    }

    /// Defined fragments, each after the fragments it spreads (cycles broken where they close).
    pub fn dependency_order(&self) -> &[&'d str] {
        &self.order
    }

    /// The cycles, each as the fragments on it with the spread leading to the next.
    pub fn cycles(&self) -> &[Vec<(&'d str, Pos)>] {
        &self.cycles
    }

    /// The defined fragments reachable from the spreads `roots`, each once, in breadth-first order.
    pub fn reachable<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> Vec<&'d str>
    where
        'd: 'a,
    {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut found: Vec<&'d str> = Vec::new();
        let mut enqueue = |name: &str, found: &mut Vec<&'d str>| {
            if let Some((defined, _)) = self.spreads.get_key_value(name) {
                if seen.insert(defined) {
                    found.push(defined);
                }
            }
        };
        for root in roots {
            enqueue(root, &mut found);
        }
        let mut next = 0;
        while let Some(&name) = found.get(next) {
            next += 1;
            for (target, _) in self.spreads_of(name) {
                enqueue(target, &mut found);
            }
        }
        found
    }

    /// Depth-first over the spreads from each fragment in `roots` order: records the post-order
    /// (`order`) and every cycle where it closes. A fragment is entered once.
    fn walk(&mut self, roots: impl Iterator<Item = &'d str>) {
        struct Frame<'d> {
            name: &'d str,
            next: usize,
        }
        let mut visited: HashSet<&'d str> = HashSet::new();
        for root in roots {
            if !visited.insert(root) {
                continue;
            }
            let mut stack = vec![Frame {
                name: root,
                next: 0,
            }];
            // The frames below the top, each with the spread it took; `on_path` indexes it.
            let mut path: Vec<(&'d str, Pos)> = Vec::new();
            let mut on_path: HashMap<&'d str, usize> = HashMap::new();
            while let Some(top) = stack.last_mut() {
                let name = top.name;
                let Some(&(target, pos)) = self.spreads[name].get(top.next) else {
                    self.order.push(name);
                    stack.pop();
                    if let Some((left, _)) = path.pop() {
                        on_path.remove(left);
                    }
                    continue;
                };
                top.next += 1;
                let start = match on_path.get(target) {
                    Some(&start) => Some(start),
                    None => (target == name).then_some(path.len()),
                };
                if let Some(start) = start {
                    let mut cycle = path[start..].to_vec();
                    cycle.push((name, pos));
                    self.cycles.push(cycle);
                    continue;
                }
                if let Some((target, _)) = self.spreads.get_key_value(target) {
                    if visited.insert(target) {
                        on_path.insert(name, path.len());
                        path.push((name, pos));
                        stack.push(Frame {
                            name: target,
                            next: 0,
                        });
                    }
                }
            }
        }
    }
}

/// Calls `field` for every field of `sets`, in document order, with inline fragments and fragment
/// spreads flattened and the selections `keep` refuses left out: GraphQL's CollectFields, which
/// enters each fragment once per collection (a second spread of it adds the same fields again).
/// Iterative, with a stack of the selection lists being walked, so a chain of spreads costs no
/// call stack.
pub(crate) fn collect_fields<'d>(
    document: &'d ExecutableDocument,
    sets: &[&'d SelectionSet],
    mut keep: impl FnMut(&'d Positioned<Selection>) -> bool,
    mut field: impl FnMut(&'d Positioned<Field>),
) {
    let mut entered: HashSet<&'d str> = HashSet::new();
    let mut stack: Vec<std::slice::Iter<'d, Positioned<Selection>>> =
        sets.iter().rev().map(|set| set.items.iter()).collect();
    while let Some(top) = stack.last_mut() {
        let Some(selection) = top.next() else {
            stack.pop();
            continue;
        };
        if !keep(selection) {
            continue;
        }
        match &selection.node {
            Selection::Field(f) => field(f),
            Selection::InlineFragment(fragment) => {
                stack.push(fragment.node.selection_set.node.items.iter())
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if let Some((name, definition)) = document.fragments.get_key_value(name) {
                    if entered.insert(name.as_str()) {
                        stack.push(definition.node.selection_set.node.items.iter());
                    }
                }
            }
        }
    }
}

/// The fragment spreads anywhere inside `set` (inside fields and inline fragments too), in
/// document order, with positions. Recursion follows the syntax of one definition, which the
/// parser bounds.
pub(crate) fn spreads_in(set: &SelectionSet) -> Vec<(&str, Pos)> {
    fn walk<'d>(set: &'d SelectionSet, out: &mut Vec<(&'d str, Pos)>) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => walk(&field.node.selection_set.node, out),
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node, out),
                Selection::FragmentSpread(spread) => {
                    out.push((spread.node.fragment_name.node.as_str(), selection.pos))
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(set, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(document: &str) -> (ExecutableDocument, Vec<String>, Vec<Vec<String>>) {
        let document = async_graphql_parser::parse_query(document).unwrap();
        let (order, cycles) = {
            let graph = Graph::new(&document);
            let order = graph
                .dependency_order()
                .iter()
                .map(|n| n.to_string())
                .collect();
            let cycles = graph
                .cycles()
                .iter()
                .map(|c| c.iter().map(|(n, _)| n.to_string()).collect())
                .collect();
            (order, cycles)
        };
        (document, order, cycles)
    }

    #[test]
    fn order_puts_spread_fragments_first_and_cycles_close_once() {
        let (_, order, cycles) = graph(
            "{ ...A } fragment A on Query { ...B ...C } fragment B on Query { ...C } \
             fragment C on Query { a } fragment D on Query { ...E } fragment E on Query { ...D ...E }",
        );
        assert_eq!(order, ["C", "B", "A", "E", "D"]);
        assert_eq!(cycles, [vec!["D", "E"], vec!["E"]]);
    }

    #[test]
    fn a_long_chain_is_walked_without_recursion() {
        // Deeper than any thread stack would allow one frame per fragment for.
        let n = 30_000;
        let mut text = String::from("{ ...F0 }");
        for i in 0..n {
            text.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        text.push_str(&format!(" fragment F{n} on Query {{ a }}"));
        let (document, order, cycles) = graph(&text);
        assert_eq!(order.len(), n + 1);
        assert_eq!(order[0], format!("F{n}"));
        assert!(cycles.is_empty());
        let graph = Graph::new(&document);
        assert_eq!(graph.reachable(["F0"]).len(), n + 1);
    }
}
