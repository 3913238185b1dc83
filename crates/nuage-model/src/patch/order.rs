//! The order of merged lists, as strategicpatch `normalizeElementOrder` sets
//! it: items named by the patch (or its `$setElementOrder` list) in patch
//! order, server-only items in live order, interleaved so that each keeps its
//! place relative to the patch items it followed in the live list.

use serde_json::Value;

/// How list items are identified: by a merge key, or by their own value.
#[derive(Debug, Clone, Copy)]
pub(super) enum Identity {
    /// Objects, compared by this field.
    Key(&'static str),
    /// Scalars, compared as values.
    Value,
}

impl Identity {
    /// The part of `item` that identifies it, if it has one.
    pub(super) fn of(self, item: &Value) -> Option<&Value> {
        match self {
            Identity::Key(key) => item.as_object()?.get(key),
            Identity::Value => Some(item),
        }
    }

    /// Position of the first item of `list` with the same identity as `item`.
    pub(super) fn position(self, list: &[Value], item: &Value) -> Option<usize> {
        let id = self.of(item)?;
        list.iter()
            .position(|other| self.of(other).is_some_and(|o| same_value(o, id)))
    }
}

/// JSON equality with numbers compared by value (`80` equals `80.0`), as Go's
/// `interface{}` comparison of decoded float64s does.
pub(super) fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        _ => a == b,
    }
}

/// Orders `merged`: the items whose identity appears in `patch_order` come in
/// that order, the rest in `server_order` order, interleaved by
/// [`merge_sorted`].
pub(super) fn normalize(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    identity: Identity,
) -> Vec<Value> {
    let (mut patch_items, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| identity.position(patch_order, item).is_some());
    sort_by_order(&mut patch_items, patch_order, identity);
    sort_by_order(&mut server_only, server_order, identity);
    merge_sorted(server_only, patch_items, server_order, identity)
}

/// Stable sort by position in `order`; items not in it go last.
fn sort_by_order(items: &mut [Value], order: &[Value], identity: Identity) {
    items.sort_by_cached_key(|item| identity.position(order, item).unwrap_or(usize::MAX));
}

/// Inserts each of `left` (server-only items) into `right` (patch items)
/// before the first right item that follows it in `server_order`.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    identity: Identity,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => return out,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (identity.position(server_order, l), identity.position(server_order, r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(items: &[Value]) -> Vec<&str> {
        items.iter().map(|i| i["name"].as_str().unwrap()).collect()
    }

    fn named(list: &[&str]) -> Vec<Value> {
        list.iter().map(|n| json!({"name": n})).collect()
    }

    #[test]
    fn patch_order_wins_and_server_items_keep_their_place() {
        let live = named(&["a", "b", "c", "d"]);
        let merged = named(&["a", "b", "c", "d", "e"]);
        let patch = named(&["e", "c", "a"]);
        let out = normalize(merged, &patch, &live, Identity::Key("name"));
        // "e" is new, so it goes first; "b" and "d" keep their live neighbours.
        assert_eq!(names(&out), ["e", "b", "c", "a", "d"]);
    }

    #[test]
    fn new_items_come_first_in_patch_order() {
        // As in Go: without $setElementOrder, items the live list lacks are
        // placed before server-only items.
        let live = named(&["a"]);
        let merged = named(&["a", "x", "y"]);
        let out = normalize(merged, &named(&["y", "x"]), &live, Identity::Key("name"));
        assert_eq!(names(&out), ["y", "x", "a"]);
    }

    #[test]
    fn scalars_and_numbers() {
        let out = normalize(
            vec![json!(1), json!(2.0), json!("a")],
            &[json!(2)],
            &[json!(1.0)],
            Identity::Value,
        );
        assert_eq!(out, vec![json!(2.0), json!(1), json!("a")]);
        assert!(same_value(&json!(80), &json!(80.0)));
        assert!(!same_value(&json!(80), &json!("80")));
        assert!(same_value(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!same_value(&json!(-1), &json!(u64::MAX)));
    }
}
