//! A byte trie over vocabulary pieces: finds every piece that is a prefix of the text at a
//! position, which is what both the unigram lattice and the user-defined-symbol matcher need.
//!
//! SentencePiece uses a darts-clone double array for this; any structure that yields the same set
//! of prefix matches gives the same segmentation, and this one is simple to build and check.

/// A node: its value (a piece id) if a piece ends here, and its children as a range of `edges`
/// or, for nodes with many children, as a row of the `dense` table.
#[derive(Debug, Clone, Copy)]
struct Node {
    value: Option<u32>,
    first_edge: u32,
    num_edges: u32,
    /// Row in `dense`, or `NO_CHILD`.
    dense_row: u32,
}

/// Nodes with more children than this get a direct 256-entry child table: the root and nodes
/// like `▁` are visited at almost every position, and a table lookup beats searching.
const DENSE_MIN_CHILDREN: usize = 8;

/// An immutable trie from byte strings to `u32` values.
#[derive(Debug, Clone)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
    /// Children of every node, each node's run sorted by byte: `(byte, child node index)`.
    edges: Vec<(u8, u32)>,
    /// Direct child tables, 256 entries per row (`NO_CHILD` where there is none).
    dense: Vec<u32>,
}

const NO_CHILD: u32 = u32::MAX;

impl Trie {
    /// Builds a trie. A key given twice keeps the first value.
    pub(crate) fn new<'a>(keys: impl IntoIterator<Item = (&'a [u8], u32)>) -> Self {
        let mut keys: Vec<(&[u8], u32)> = keys.into_iter().collect();
        // A stable sort keeps equal keys in input order, so `dedup_by` keeps the first value.
        keys.sort_by(|a, b| a.0.cmp(b.0));
        keys.dedup_by(|later, earlier| later.0 == earlier.0);

        // Each node owns the run `lo..hi` of sorted keys that share its `depth`-byte prefix; its
        // children split that run by the next byte, so edges come out sorted and contiguous.
        let mut nodes = vec![Node {
            value: None,
            first_edge: 0,
            num_edges: 0,
            dense_row: NO_CHILD,
        }];
        let mut edges: Vec<(u8, u32)> = Vec::new();
        let mut queue = std::collections::VecDeque::from([(0usize, 0usize, keys.len(), 0usize)]);
        while let Some((index, lo, hi, depth)) = queue.pop_front() {
            let mut i = lo;
            if let Some(&(key, value)) = keys.get(i) {
                if i < hi && key.len() == depth {
                    nodes[index].value = Some(value);
                    i += 1;
                }
            }
            let first_edge = edges.len();
            while i < hi {
                let byte = keys[i].0[depth];
                let mut j = i + 1;
                while j < hi && keys[j].0[depth] == byte {
                    j += 1;
                }
                let child = nodes.len();
                nodes.push(Node {
                    value: None,
                    first_edge: 0,
                    num_edges: 0,
                    dense_row: NO_CHILD,
                });
                edges.push((byte, child as u32));
                queue.push_back((child, i, j, depth + 1));
                i = j;
            }
            nodes[index].first_edge = first_edge as u32;
            nodes[index].num_edges = (edges.len() - first_edge) as u32;
        }

        let mut dense = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            if i == 0 || node.num_edges as usize > DENSE_MIN_CHILDREN {
                node.dense_row = (dense.len() / 256) as u32;
                let row = dense.len();
                dense.resize(row + 256, NO_CHILD);
                let start = node.first_edge as usize;
                for &(b, child) in &edges[start..start + node.num_edges as usize] {
                    dense[row + usize::from(b)] = child;
                }
            }
        }
        Trie {
            nodes,
            edges,
            dense,
        }
    }

    /// The child of `node` along byte `b`.
    #[inline]
    fn child(&self, node: u32, b: u8) -> Option<u32> {
        let n = self.nodes.get(node as usize)?;
        if n.dense_row != NO_CHILD {
            let c = *self
                .dense
                .get(n.dense_row as usize * 256 + usize::from(b))?;
            return (c != NO_CHILD).then_some(c);
        }
        let start = n.first_edge as usize;
        let run = self.edges.get(start..start + n.num_edges as usize)?;
        // Runs are short and sorted: a linear scan that stops early.
        for &(byte, child) in run {
            if byte >= b {
                return (byte == b).then_some(child);
            }
        }
        None
    }

    /// Calls `f(length, value)` for every key that is a prefix of `text`, shortest first.
    #[inline]
    pub(crate) fn for_each_prefix(&self, text: &[u8], mut f: impl FnMut(usize, u32)) {
        let mut node = 0u32;
        for (i, &b) in text.iter().enumerate() {
            match self.child(node, b) {
                Some(next) => node = next,
                None => return,
            }
            if let Some(v) = self.nodes.get(node as usize).and_then(|n| n.value) {
                f(i + 1, v);
            }
        }
    }

    /// The value of `key` itself, if it is a key.
    pub(crate) fn get(&self, key: &[u8]) -> Option<u32> {
        let mut node = 0u32;
        for &b in key {
            node = self.child(node, b)?;
        }
        self.nodes.get(node as usize)?.value
    }

    /// The length of the longest key that is a prefix of `text`, if any.
    pub(crate) fn longest_prefix(&self, text: &[u8]) -> Option<usize> {
        let mut best = None;
        self.for_each_prefix(text, |len, _| best = Some(len));
        best
    }

    /// True when the trie holds no key at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.iter().all(|n| n.value.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_longest_and_exact() {
        let keys: Vec<(&[u8], u32)> = vec![
            (b"a", 1),
            (b"ab", 2),
            (b"abcd", 3),
            (b"b", 4),
            ("▁".as_bytes(), 5),
        ];
        let t = Trie::new(keys);
        let mut found = Vec::new();
        t.for_each_prefix(b"abcde", |l, v| found.push((l, v)));
        assert_eq!(found, vec![(1, 1), (2, 2), (4, 3)]);
        assert_eq!(t.longest_prefix(b"abc"), Some(2));
        assert_eq!(t.longest_prefix(b"c"), None);
        assert_eq!(t.longest_prefix("▁x".as_bytes()), Some(3));
        assert_eq!(t.get(b"ab"), Some(2));
        assert_eq!(t.get(b"abc"), None, "a prefix of a key is not a key");
        assert_eq!(t.get(b"abcde"), None);
        assert_eq!(t.get(b""), None);
        assert_eq!(t.get("▁".as_bytes()), Some(5));
        assert!(!t.is_empty());
        assert!(Trie::new(Vec::<(&[u8], u32)>::new()).is_empty());
    }
}
