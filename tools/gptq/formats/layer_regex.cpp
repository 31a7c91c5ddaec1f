// LayerRegex: a recursive-descent parser (depth bounded by kMaxNesting)
// into a small syntax tree, compiled back to front into a Thompson NFA, and
// simulated over the name one byte at a time with a set of live states.
#include "formats/layer_regex.h"

#include <memory>
#include <utility>

#include "common/tool_error.h"

namespace gptqtool {

namespace {

using ByteSet = std::bitset<256>;

struct Node {
  enum class Type { Empty, Bytes, Concat, Alt, Repeat, Begin, End } type = Type::Empty;
  ByteSet bytes;            // Bytes
  std::vector<Node> kids;   // Concat, Alt; Repeat: one
  int min = 0, max = -1;    // Repeat; max -1 = unbounded
};

// The pattern as a message shows it: one line, printable, not too long.
std::string shown(const std::string &p) {
  std::string s;
  for (size_t k = 0; k < p.size() && k < 80; ++k) {
    const auto c = static_cast<unsigned char>(p[k]);
    if (c >= 0x20 && c < 0x7f) {
      s += static_cast<char>(c);
    } else {
      static const char kHex[] = "0123456789abcdef";
      s += "\\x";
      s += kHex[c >> 4];
      s += kHex[c & 15];
    }
  }
  if (p.size() > 80) s += "...";
  return "'" + s + "'";
}

ByteSet range_set(int lo, int hi) {
  ByteSet s;
  for (int c = lo; c <= hi; ++c) s.set(static_cast<size_t>(c));
  return s;
}

ByteSet digit_set() { return range_set('0', '9'); }
ByteSet word_set() {
  return range_set('a', 'z') | range_set('A', 'Z') | range_set('0', '9') | range_set('_', '_');
}
ByteSet space_set() {
  ByteSet s;
  for (char c : {' ', '\t', '\n', '\r', '\f', '\v'}) s.set(static_cast<unsigned char>(c));
  return s;
}

class Parser {
 public:
  explicit Parser(const std::string &p) : p_(p) {}

  Node parse() {
    Node n = alternation();
    if (i_ < p_.size()) fail("unbalanced parenthesis ')'");  // only ')' stops alternation
    return n;
  }

 private:
  [[noreturn]] void fail(const std::string &what) const {
    throw ToolError("regex " + shown(p_) + ": " + what + " at offset " + std::to_string(i_));
  }
  bool at_end() const { return i_ >= p_.size(); }
  char peek() const { return p_[i_]; }

  Node alternation() {
    Node first = concatenation();
    if (at_end() || peek() != '|') return first;
    Node alt;
    alt.type = Node::Type::Alt;
    alt.kids.push_back(std::move(first));
    while (!at_end() && peek() == '|') {
      ++i_;
      alt.kids.push_back(concatenation());
    }
    return alt;
  }

  Node concatenation() {
    Node cat;
    cat.type = Node::Type::Concat;
    while (!at_end() && peek() != '|' && peek() != ')') cat.kids.push_back(repetition());
    if (cat.kids.empty()) return Node{};
    if (cat.kids.size() == 1) return std::move(cat.kids.front());
    return cat;
  }

  // {m}, {m,}, {,n} or {m,n} at i_; false (i_ unchanged) when the brace
  // does not open a valid count, in which case Python reads '{' literally.
  bool counted(int *min, int *max) {
    size_t j = i_ + 1;
    auto number = [&](int *out) {
      const size_t start = j;
      long long v = 0;
      while (j < p_.size() && p_[j] >= '0' && p_[j] <= '9') {
        if (v <= kMaxRepeatCheck) v = v * 10 + (p_[j] - '0');
        ++j;
      }
      *out = v > kMaxRepeatCheck ? kMaxRepeatCheck + 1 : static_cast<int>(v);
      return j > start;
    };
    int lo = 0, hi = -1;
    const bool has_lo = number(&lo);
    if (j < p_.size() && p_[j] == '}') {
      if (!has_lo) return false;
      hi = lo;
    } else if (j < p_.size() && p_[j] == ',') {
      ++j;
      if (!number(&hi)) hi = -1;
      if (j >= p_.size() || p_[j] != '}') return false;
      if (!has_lo) lo = 0;
    } else {
      return false;
    }
    if (lo > LayerRegex::kMaxRepeat || hi > LayerRegex::kMaxRepeat) {
      fail("a repetition count above " + std::to_string(LayerRegex::kMaxRepeat));
    }
    if (hi >= 0 && hi < lo) fail("a repetition {m,n} with n < m");
    i_ = j + 1;
    *min = lo;
    *max = hi;
    return true;
  }

  bool quantifier_next() {
    if (at_end()) return false;
    const char c = peek();
    if (c == '*' || c == '+' || c == '?') return true;
    if (c != '{') return false;
    const size_t save = i_;
    int a = 0, b = 0;
    const bool ok = counted(&a, &b);
    i_ = save;
    return ok;
  }

  Node repetition() {
    Node atom = this->atom();
    bool repeated = false;
    while (quantifier_next()) {
      if (repeated) fail("multiple repeat");
      if (atom.type == Node::Type::Begin || atom.type == Node::Type::End) {
        fail("nothing to repeat");
      }
      int min = 0, max = -1;
      const char c = peek();
      if (c == '*') {
        ++i_;
      } else if (c == '+') {
        ++i_;
        min = 1;
      } else if (c == '?') {
        ++i_;
        max = 1;
      } else {
        counted(&min, &max);
      }
      // A lazy quantifier matches the same set of names; a possessive one
      // does not (it never gives back), so it is refused.
      if (!at_end() && peek() == '?') {
        ++i_;
      } else if (!at_end() && peek() == '+') {
        fail("possessive quantifiers (*+, ++, ?+, {m,n}+) are not supported");
      }
      Node rep;
      rep.type = Node::Type::Repeat;
      rep.min = min;
      rep.max = max;
      rep.kids.push_back(std::move(atom));
      atom = std::move(rep);
      repeated = true;
    }
    return atom;
  }

  Node bytes(const ByteSet &s) {
    Node n;
    n.type = Node::Type::Bytes;
    n.bytes = s;
    return n;
  }

  Node atom() {
    if (quantifier_next()) fail("nothing to repeat");
    const char c = peek();
    ++i_;
    switch (c) {
      case '(': return group();
      case '[': return bytes(byte_class());
      case '.': return bytes(~range_set('\n', '\n'));
      case '^': {
        Node n;
        n.type = Node::Type::Begin;
        return n;
      }
      case '$': {
        Node n;
        n.type = Node::Type::End;
        return n;
      }
      case '\\': return escape_atom();
      default: return bytes(range_set(static_cast<unsigned char>(c), static_cast<unsigned char>(c)));
    }
  }

  Node group() {
    if (!at_end() && peek() == '?') {
      ++i_;
      if (at_end()) fail("unterminated group '(?'");
      const char k = peek();
      if (k == ':') {
        ++i_;
      } else if (k == 'P' && i_ + 1 < p_.size() && p_[i_ + 1] == '<') {
        // A named group captures, which matching does not need.
        i_ += 2;
        const size_t start = i_;
        while (!at_end() && (word_set().test(static_cast<unsigned char>(peek())))) ++i_;
        if (at_end() || peek() != '>' || i_ == start) fail("a bad group name in (?P<name>...)");
        ++i_;
      } else if (k == 'P' && i_ + 1 < p_.size() && p_[i_ + 1] == '=') {
        fail("named back-references (?P=name) are not supported");
      } else if (k == '=' || k == '!') {
        fail("look-ahead assertions (?=...) (?!...) are not supported");
      } else if (k == '<') {
        fail("look-behind assertions (?<=...) (?<!...) are not supported");
      } else if (k == '#') {
        fail("comments (?#...) are not supported");
      } else if (k == '(') {
        fail("conditional groups (?(...)...) are not supported");
      } else {
        fail("inline flags such as (?i) are not supported");
      }
    }
    if (++depth_ > LayerRegex::kMaxNesting) {
      fail("groups nested deeper than " + std::to_string(LayerRegex::kMaxNesting));
    }
    Node inner = alternation();
    --depth_;
    if (at_end() || peek() != ')') fail("missing ')'");
    ++i_;
    return inner;
  }

  // The escape after a backslash (i_ is past it), outside or inside [...]:
  // its byte set. Sets `single` to the byte for a one-byte escape (ranges
  // need one), to -1 for a class such as \d.
  ByteSet escape(int *single) {
    if (at_end()) fail("a trailing backslash");
    const char c = peek();
    ++i_;
    *single = -1;
    switch (c) {
      case 'd': return digit_set();
      case 'D': return ~digit_set();
      case 'w': return word_set();
      case 'W': return ~word_set();
      case 's': return space_set();
      case 'S': return ~space_set();
      case 't': *single = '\t'; break;
      case 'n': *single = '\n'; break;
      case 'r': *single = '\r'; break;
      case 'f': *single = '\f'; break;
      case 'v': *single = '\v'; break;
      default:
        if (c >= '0' && c <= '9') {
          --i_;
          fail("back-references and octal escapes (\\1, \\0, ...) are not supported");
        }
        if (c == 'b' || c == 'B') {
          --i_;
          fail("word boundaries \\b and \\B are not supported");
        }
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
          --i_;
          fail(std::string("the escape \\") + c + " is not supported");
        }
        *single = static_cast<unsigned char>(c);  // escaped punctuation: itself
    }
    return range_set(*single, *single);
  }

  Node escape_atom() {
    if (!at_end() && (peek() == 'A' || peek() == 'Z')) {
      Node n;
      n.type = peek() == 'A' ? Node::Type::Begin : Node::Type::End;
      ++i_;
      return n;
    }
    int single = 0;
    return bytes(escape(&single));
  }

  // [...] with i_ just past '['.
  ByteSet byte_class() {
    const size_t open = i_ - 1;
    bool negate = false;
    if (!at_end() && peek() == '^') {
      negate = true;
      ++i_;
    }
    ByteSet set;
    bool first = true;
    for (;;) {
      if (at_end()) {
        i_ = open;
        fail("unterminated character set '['");
      }
      char c = peek();
      if (c == ']' && !first) {
        ++i_;
        break;
      }
      first = false;
      ++i_;
      int lo = static_cast<unsigned char>(c);
      if (c == '\\') {
        const ByteSet s = escape(&lo);
        if (lo < 0) {  // \d and the like
          set |= s;
          if (!at_end() && peek() == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
            fail("a bad character range");
          }
          continue;
        }
      }
      if (!at_end() && peek() == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        int hi = static_cast<unsigned char>(peek());
        ++i_;
        if (hi == '\\') {
          escape(&hi);
          if (hi < 0) fail("a bad character range");
        }
        if (hi < lo) fail("a bad character range");
        set |= range_set(lo, hi);
      } else {
        set.set(static_cast<size_t>(lo));
      }
    }
    return negate ? ~set : set;
  }

  // Counts are clamped just above kMaxRepeat while read, so that a huge
  // number neither overflows nor passes.
  static constexpr int kMaxRepeatCheck = LayerRegex::kMaxRepeat;

  const std::string &p_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

// Builds the NFA back to front: each node is compiled knowing the state
// that follows it, so no dangling edges need patching. Repetitions are
// expanded into copies, bounded by kMaxStates.
class LayerRegexCompiler {
 public:
  explicit LayerRegexCompiler(LayerRegex *re) : re_(re) {}

  int32_t compile(const Node &n, int32_t next) {
    using T = Node::Type;
    // Repetitions of empty groups add no states but still take steps.
    if (++steps_ > 4 * LayerRegex::kMaxStates) too_large();
    switch (n.type) {
      case T::Empty: return next;
      case T::Bytes: {
        const int32_t s = add(LayerRegex::Kind::Byte, next, -1);
        re_->states_[static_cast<size_t>(s)].bytes = n.bytes;
        return s;
      }
      case T::Begin: return add(LayerRegex::Kind::Begin, next, -1);
      case T::End: return add(LayerRegex::Kind::End, next, -1);
      case T::Concat:
        for (auto it = n.kids.rbegin(); it != n.kids.rend(); ++it) next = compile(*it, next);
        return next;
      case T::Alt: {
        int32_t s = compile(n.kids.back(), next);
        for (size_t k = n.kids.size() - 1; k-- > 0;) {
          s = add(LayerRegex::Kind::Split, compile(n.kids[k], next), s);
        }
        return s;
      }
      case T::Repeat: {
        const Node &body = n.kids.front();
        int32_t s = next;
        if (n.max < 0) {
          // A loop: the split either enters the body (which returns to the
          // split) or leaves.
          const int32_t loop = add(LayerRegex::Kind::Split, -1, next);
          const int32_t entry = compile(body, loop);
          re_->states_[static_cast<size_t>(loop)].out = entry;
          s = loop;
        } else {
          for (int k = n.min; k < n.max; ++k) {
            s = add(LayerRegex::Kind::Split, compile(body, s), next);
          }
        }
        for (int k = 0; k < n.min; ++k) s = compile(body, s);
        return s;
      }
    }
    return next;
  }

  int32_t add(LayerRegex::Kind kind, int32_t out, int32_t out1) {
    if (re_->states_.size() >= LayerRegex::kMaxStates) too_large();
    LayerRegex::State st;
    st.kind = kind;
    st.out = out;
    st.out1 = out1;
    re_->states_.push_back(st);
    return static_cast<int32_t>(re_->states_.size() - 1);
  }

 private:
  [[noreturn]] void too_large() const {
    throw ToolError("regex " + shown(re_->pattern_) + ": more than " +
                    std::to_string(LayerRegex::kMaxStates) +
                    " states once its repetitions are expanded");
  }

  LayerRegex *re_;
  size_t steps_ = 0;
};

LayerRegex::LayerRegex(const std::string &pattern) : pattern_(pattern) {
  if (pattern.size() > kMaxPatternBytes) {
    throw ToolError("regex " + shown(pattern) + " is " + std::to_string(pattern.size()) +
                    " bytes long; at most " + std::to_string(kMaxPatternBytes) +
                    " are accepted");
  }
  const Node tree = Parser(pattern).parse();
  LayerRegexCompiler c(this);
  const int32_t accept = c.add(Kind::Accept, -1, -1);
  start_ = c.compile(tree, accept);
}

bool LayerRegex::match(const std::string &name) const {
  const size_t n = name.size();
  std::vector<uint32_t> seen(states_.size(), 0);
  uint32_t generation = 0;
  std::vector<int32_t> current, next, stack;
  // Adds the states reachable from s without consuming a byte at position
  // pos to `list` (byte states only); true when the accept state is reached.
  auto close = [&](int32_t s, size_t pos, std::vector<int32_t> *list) {
    stack.push_back(s);
    while (!stack.empty()) {
      const int32_t t = stack.back();
      stack.pop_back();
      if (t < 0 || seen[static_cast<size_t>(t)] == generation) continue;
      seen[static_cast<size_t>(t)] = generation;
      const State &st = states_[static_cast<size_t>(t)];
      switch (st.kind) {
        case Kind::Accept: stack.clear(); return true;
        case Kind::Byte: list->push_back(t); break;
        case Kind::Split:
          stack.push_back(st.out1);
          stack.push_back(st.out);
          break;
        case Kind::Begin:
          if (pos == 0) stack.push_back(st.out);
          break;
        case Kind::End:
          if (pos == n) stack.push_back(st.out);
          break;
      }
    }
    return false;
  };
  ++generation;
  if (close(start_, 0, &current)) return true;
  for (size_t pos = 0; pos < n && !current.empty(); ++pos) {
    const auto byte = static_cast<unsigned char>(name[pos]);
    ++generation;
    next.clear();
    for (int32_t s : current) {
      const State &st = states_[static_cast<size_t>(s)];
      if (st.bytes.test(byte) && close(st.out, pos + 1, &next)) return true;
    }
    current.swap(next);
  }
  return false;
}

}  // namespace gptqtool
