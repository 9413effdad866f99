// GraphQL document parsing: see graphql.hpp. Recursive descent over a token stream
// (GraphQL October 2021, executable definitions only), then variable resolution and
// fragment expansion for the chosen operation. Nesting is bounded so that a hostile
// document cannot exhaust the stack.
#include "sim/graphql.hpp"

#include <boost/json/value.hpp>

#include <charconv>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>

namespace klingq::sim::graphql {
namespace json = boost::json;

namespace {

constexpr int max_depth = 64;

struct SyntaxError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class TokenKind { end, punctuator, name, integer, floating, string };

struct Token {
  TokenKind kind = TokenKind::end;
  std::string text;  // punctuator or name spelling; the decoded value of a string
  std::size_t offset = 0;
};

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  Token next() {
    skip_ignored();
    Token t;
    t.offset = pos_;
    if (pos_ >= text_.size()) return t;
    char c = text_[pos_];
    if (c == '.') {
      if (text_.substr(pos_, 3) != "...") fail("expected \"...\"");
      pos_ += 3;
      t.kind = TokenKind::punctuator;
      t.text = "...";
      return t;
    }
    if (std::string_view("!$&()/:=@[]{}|").find(c) != std::string_view::npos) {
      ++pos_;
      t.kind = TokenKind::punctuator;
      t.text = std::string(1, c);
      return t;
    }
    if (c == '_' || is_letter(c)) {
      auto start = pos_;
      while (pos_ < text_.size() && (text_[pos_] == '_' || is_letter(text_[pos_]) || is_digit(text_[pos_]))) {
        ++pos_;
      }
      t.kind = TokenKind::name;
      t.text = std::string(text_.substr(start, pos_ - start));
      return t;
    }
    if (c == '-' || is_digit(c)) return number();
    if (c == '"') return string();
    fail(std::string("unexpected character '") + c + "'");
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw SyntaxError("Syntax Error: " + what + " at offset " + std::to_string(pos_));
  }

 private:
  static bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  void skip_ignored() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < text_.size() && text_[pos_] != '\n' && text_[pos_] != '\r') ++pos_;
      } else if (text_.substr(pos_, 3) == "\xEF\xBB\xBF") {
        pos_ += 3;
      } else {
        break;
      }
    }
  }

  Token number() {
    Token t;
    t.offset = pos_;
    auto start = pos_;
    bool is_float = false;
    if (text_[pos_] == '-') ++pos_;
    if (pos_ >= text_.size() || !is_digit(text_[pos_])) fail("invalid number");
    if (text_[pos_] == '0' && pos_ + 1 < text_.size() && is_digit(text_[pos_ + 1])) {
      fail("invalid number, unexpected digit after 0");
    }
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      is_float = true;
      ++pos_;
      if (pos_ >= text_.size() || !is_digit(text_[pos_])) fail("invalid number");
      while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      is_float = true;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (pos_ >= text_.size() || !is_digit(text_[pos_])) fail("invalid number");
      while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == '_' || is_letter(text_[pos_]) || text_[pos_] == '.')) {
      fail("invalid number");
    }
    t.kind = is_float ? TokenKind::floating : TokenKind::integer;
    t.text = std::string(text_.substr(start, pos_ - start));
    return t;
  }

  Token string() {
    Token t;
    t.offset = pos_;
    t.kind = TokenKind::string;
    if (text_.substr(pos_, 3) == "\"\"\"") return block_string(t);
    ++pos_;
    for (;;) {
      if (pos_ >= text_.size() || text_[pos_] == '\n' || text_[pos_] == '\r') fail("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return t;
      if (c != '\\') {
        t.text += c;
        continue;
      }
      if (pos_ >= text_.size()) fail("unterminated string");
      char e = text_[pos_++];
      switch (e) {
        case '"': t.text += '"'; break;
        case '\\': t.text += '\\'; break;
        case '/': t.text += '/'; break;
        case 'b': t.text += '\b'; break;
        case 'f': t.text += '\f'; break;
        case 'n': t.text += '\n'; break;
        case 'r': t.text += '\r'; break;
        case 't': t.text += '\t'; break;
        case 'u': {
          auto cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF && text_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            auto low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("invalid surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(t.text, cp);
          break;
        }
        default: fail(std::string("invalid escape \\") + e);
      }
    }
  }

  std::uint32_t hex4() {
    if (pos_ + 4 > text_.size()) fail("invalid unicode escape");
    std::uint32_t v = 0;
    auto r = std::from_chars(text_.data() + pos_, text_.data() + pos_ + 4, v, 16);
    if (r.ptr != text_.data() + pos_ + 4) fail("invalid unicode escape");
    pos_ += 4;
    return v;
  }

  // Block strings: raw text with common indentation and blank edge lines removed.
  Token block_string(Token t) {
    pos_ += 3;
    std::string raw;
    for (;;) {
      if (pos_ >= text_.size()) fail("unterminated block string");
      if (text_.substr(pos_, 3) == "\"\"\"") {
        pos_ += 3;
        break;
      }
      if (text_.substr(pos_, 4) == "\\\"\"\"") {
        raw += "\"\"\"";
        pos_ += 4;
        continue;
      }
      raw += text_[pos_++];
    }
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= raw.size(); ++i) {
      if (i == raw.size() || raw[i] == '\n') {
        std::string line = raw.substr(start, i - start);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(std::move(line));
        start = i + 1;
      }
    }
    std::optional<std::size_t> common;
    for (std::size_t i = 1; i < lines.size(); ++i) {
      auto indent = lines[i].find_first_not_of(" \t");
      if (indent == std::string::npos) continue;
      if (!common || indent < *common) common = indent;
    }
    if (common) {
      for (std::size_t i = 1; i < lines.size(); ++i) lines[i].erase(0, std::min(*common, lines[i].size()));
    }
    auto blank = [](const std::string& l) { return l.find_first_not_of(" \t") == std::string::npos; };
    while (!lines.empty() && blank(lines.front())) lines.erase(lines.begin());
    while (!lines.empty() && blank(lines.back())) lines.pop_back();
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i) t.text += '\n';
      t.text += lines[i];
    }
    return t;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// ---- The syntax tree, values still holding variable references.

struct Value {
  enum class Kind { variable, scalar, list, object } kind = Kind::scalar;
  std::string variable;  // kind == variable
  json::value scalar;    // kind == scalar: null, bool, number, string (enums as strings)
  std::vector<Value> items;                           // kind == list
  // kind == object; names and values side by side, because a pair of an incomplete
  // type does not compile with clang and libstdc++.
  std::vector<std::string> member_names;
  std::vector<Value> member_values;
};

struct Directive {
  std::string name;
  std::vector<std::pair<std::string, Value>> arguments;
};

struct Selection;
using SelectionSet = std::vector<Selection>;

struct Selection {
  enum class Kind { field, spread, inline_fragment } kind = Kind::field;
  std::string alias;
  std::string name;  // field name, or fragment name for a spread
  std::vector<std::pair<std::string, Value>> arguments;
  std::vector<Directive> directives;
  SelectionSet selection;
};

struct VariableDefinition {
  std::string name;
  std::string type;  // as written, e.g. "GenerateInput!"
  bool non_null = false;
  std::optional<Value> default_value;
};

struct OperationDefinition {
  std::string kind;
  std::string name;
  std::vector<VariableDefinition> variables;
  SelectionSet selection;
};

struct Document {
  std::vector<OperationDefinition> operations;
  std::map<std::string, SelectionSet> fragments;
};

class Parser {
 public:
  explicit Parser(std::string_view text) : lexer_(text) { advance(); }

  Document document() {
    Document doc;
    if (token_.kind == TokenKind::end) lexer_.fail("the document has no operation");
    while (token_.kind != TokenKind::end) {
      if (is_punct("{")) {
        OperationDefinition op;
        op.kind = "query";
        op.selection = selection_set(0);
        doc.operations.push_back(std::move(op));
      } else if (token_.kind == TokenKind::name &&
                 (token_.text == "query" || token_.text == "mutation" || token_.text == "subscription")) {
        doc.operations.push_back(operation());
      } else if (token_.kind == TokenKind::name && token_.text == "fragment") {
        advance();
        auto name = expect_name();
        if (name == "on") lexer_.fail("a fragment cannot be named \"on\"");
        expect_keyword("on");
        expect_name();  // type condition: the simulator has one type per root field
        directives(0);
        auto set = selection_set(0);
        if (!doc.fragments.emplace(name, std::move(set)).second) {
          lexer_.fail("there can be only one fragment named \"" + name + "\"");
        }
      } else {
        unexpected();
      }
    }
    return doc;
  }

 private:
  void advance() { token_ = lexer_.next(); }
  bool is_punct(std::string_view p) const { return token_.kind == TokenKind::punctuator && token_.text == p; }
  [[noreturn]] void unexpected() {
    if (token_.kind == TokenKind::end) lexer_.fail("unexpected end of document");
    lexer_.fail("unexpected \"" + token_.text + "\"");
  }
  void expect_punct(std::string_view p) {
    if (!is_punct(p)) {
      if (token_.kind == TokenKind::end) lexer_.fail("expected \"" + std::string(p) + "\", found end of document");
      lexer_.fail("expected \"" + std::string(p) + "\", found \"" + token_.text + "\"");
    }
    advance();
  }
  std::string expect_name() {
    if (token_.kind != TokenKind::name) unexpected();
    auto name = std::move(token_.text);
    advance();
    return name;
  }
  void expect_keyword(std::string_view keyword) {
    if (token_.kind != TokenKind::name || token_.text != keyword) unexpected();
    advance();
  }
  void check_depth(int depth) {
    if (depth > max_depth) lexer_.fail("the document is nested too deeply");
  }

  OperationDefinition operation() {
    OperationDefinition op;
    op.kind = token_.text;
    advance();
    if (token_.kind == TokenKind::name) op.name = expect_name();
    if (is_punct("(")) {
      advance();
      while (!is_punct(")")) {
        VariableDefinition def;
        expect_punct("$");
        def.name = expect_name();
        expect_punct(":");
        def.type = type(0, def.non_null);
        if (is_punct("=")) {
          advance();
          def.default_value = value(true, 0);
        }
        directives(0);
        op.variables.push_back(std::move(def));
      }
      advance();
    }
    directives(0);
    op.selection = selection_set(0);
    return op;
  }

  std::string type(int depth, bool& non_null) {
    check_depth(depth);
    std::string out;
    if (is_punct("[")) {
      advance();
      bool inner_non_null = false;
      out = "[" + type(depth + 1, inner_non_null) + "]";
      expect_punct("]");
    } else {
      out = expect_name();
    }
    non_null = false;
    if (is_punct("!")) {
      advance();
      out += "!";
      non_null = true;
    }
    return out;
  }

  Value value(bool is_const, int depth) {
    check_depth(depth);
    Value v;
    if (is_punct("$")) {
      if (is_const) lexer_.fail("a variable is not allowed in a default value");
      advance();
      v.kind = Value::Kind::variable;
      v.variable = expect_name();
      return v;
    }
    if (is_punct("[")) {
      advance();
      v.kind = Value::Kind::list;
      while (!is_punct("]")) {
        if (token_.kind == TokenKind::end) unexpected();
        v.items.push_back(value(is_const, depth + 1));
      }
      advance();
      return v;
    }
    if (is_punct("{")) {
      advance();
      v.kind = Value::Kind::object;
      while (!is_punct("}")) {
        auto name = expect_name();
        expect_punct(":");
        v.member_names.push_back(std::move(name));
        v.member_values.push_back(value(is_const, depth + 1));
      }
      advance();
      return v;
    }
    switch (token_.kind) {
      case TokenKind::integer: {
        std::int64_t n = 0;
        auto r = std::from_chars(token_.text.data(), token_.text.data() + token_.text.size(), n);
        if (r.ec != std::errc()) lexer_.fail("integer out of range");
        v.scalar = n;
        break;
      }
      case TokenKind::floating: v.scalar = std::stod(token_.text); break;
      case TokenKind::string: v.scalar = token_.text; break;
      case TokenKind::name:
        if (token_.text == "true") {
          v.scalar = true;
        } else if (token_.text == "false") {
          v.scalar = false;
        } else if (token_.text == "null") {
          v.scalar = nullptr;
        } else {
          v.scalar = token_.text;  // an enum value, e.g. VIDEO
        }
        break;
      default: unexpected();
    }
    advance();
    return v;
  }

  std::vector<std::pair<std::string, Value>> arguments(int depth) {
    std::vector<std::pair<std::string, Value>> out;
    if (!is_punct("(")) return out;
    advance();
    while (!is_punct(")")) {
      auto name = expect_name();
      expect_punct(":");
      out.emplace_back(std::move(name), value(false, depth + 1));
    }
    advance();
    return out;
  }

  std::vector<Directive> directives(int depth) {
    std::vector<Directive> out;
    while (is_punct("@")) {
      advance();
      Directive d;
      d.name = expect_name();
      d.arguments = arguments(depth);
      out.push_back(std::move(d));
    }
    return out;
  }

  SelectionSet selection_set(int depth) {
    check_depth(depth);
    expect_punct("{");
    SelectionSet set;
    while (!is_punct("}")) {
      if (token_.kind == TokenKind::end) unexpected();
      Selection s;
      if (is_punct("...")) {
        advance();
        if (token_.kind == TokenKind::name && token_.text != "on") {
          s.kind = Selection::Kind::spread;
          s.name = expect_name();
          s.directives = directives(depth);
        } else {
          s.kind = Selection::Kind::inline_fragment;
          if (token_.kind == TokenKind::name) {  // "on Type"
            advance();
            expect_name();
          }
          s.directives = directives(depth);
          s.selection = selection_set(depth + 1);
        }
      } else {
        s.name = expect_name();
        if (is_punct(":")) {
          advance();
          s.alias = std::move(s.name);
          s.name = expect_name();
        }
        s.arguments = arguments(depth);
        s.directives = directives(depth);
        if (is_punct("{")) s.selection = selection_set(depth + 1);
      }
      set.push_back(std::move(s));
    }
    advance();
    if (set.empty()) lexer_.fail("a selection set cannot be empty");
    return set;
  }

  Lexer lexer_;
  Token token_;
};

// ---- Execution-time resolution.

struct ResolveError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Resolver {
 public:
  Resolver(const Document& doc, json::object variables) : doc_(doc), variables_(std::move(variables)) {}

  json::value value(const Value& v) const {
    switch (v.kind) {
      case Value::Kind::variable: {
        // Declared variables are all in variables_ (null when not given).
        auto* found = variables_.if_contains(v.variable);
        if (!found) throw ResolveError("Variable \"$" + v.variable + "\" is not defined.");
        return *found;
      }
      case Value::Kind::scalar: return v.scalar;
      case Value::Kind::list: {
        json::array a;
        for (const auto& item : v.items) a.push_back(value(item));
        return a;
      }
      case Value::Kind::object: {
        json::object o;
        for (std::size_t i = 0; i < v.member_names.size(); ++i) o[v.member_names[i]] = value(v.member_values[i]);
        return o;
      }
    }
    return {};
  }

  bool included(const std::vector<Directive>& directives) const {
    for (const auto& d : directives) {
      if (d.name != "skip" && d.name != "include") continue;
      std::optional<bool> condition;
      for (const auto& [name, arg] : d.arguments) {
        if (name != "if") continue;
        auto v = value(arg);
        if (!v.is_bool()) throw ResolveError("Argument \"if\" of @" + d.name + " must be a Boolean");
        condition = v.get_bool();
      }
      if (!condition) throw ResolveError("Directive @" + d.name + " requires the argument \"if\"");
      if (d.name == "skip" && *condition) return false;
      if (d.name == "include" && !*condition) return false;
    }
    return true;
  }

  void fields(const SelectionSet& set, std::vector<Field>& out, int depth) const {
    if (depth > max_depth) throw ResolveError("fragments are nested too deeply (a cycle?)");
    for (const auto& s : set) {
      if (!included(s.directives)) continue;
      switch (s.kind) {
        case Selection::Kind::field: {
          Field f;
          f.name = s.name;
          f.alias = s.alias.empty() ? s.name : s.alias;
          for (const auto& [name, arg] : s.arguments) f.arguments[name] = value(arg);
          fields(s.selection, f.selection, depth + 1);
          out.push_back(std::move(f));
          break;
        }
        case Selection::Kind::spread: {
          auto found = doc_.fragments.find(s.name);
          if (found == doc_.fragments.end()) throw ResolveError("Unknown fragment \"" + s.name + "\".");
          fields(found->second, out, depth + 1);
          break;
        }
        case Selection::Kind::inline_fragment: fields(s.selection, out, depth + 1); break;
      }
    }
  }

 private:
  const Document& doc_;
  json::object variables_;
};

}  // namespace

std::variant<Operation, Error> parse(std::string_view document, const json::object& variables,
                                     std::string_view operation_name) {
  try {
    auto doc = Parser(document).document();
    const OperationDefinition* chosen = nullptr;
    if (!operation_name.empty()) {
      for (const auto& op : doc.operations) {
        if (op.name == operation_name) chosen = &op;
      }
      if (!chosen) return Error{"Unknown operation named \"" + std::string(operation_name) + "\"."};
    } else if (doc.operations.size() == 1) {
      chosen = &doc.operations.front();
    } else {
      return Error{"Must provide operation name if query contains multiple operations."};
    }
    // Coerce the variables: declared ones only, defaults applied, required ones present.
    json::object resolved;
    for (const auto& def : chosen->variables) {
      auto* given = variables.if_contains(def.name);
      if (given && !given->is_null()) {
        resolved[def.name] = *given;
      } else if (!given && def.default_value) {
        resolved[def.name] = Resolver(doc, {}).value(*def.default_value);
      } else if (def.non_null) {
        return Error{"Variable \"$" + def.name + "\" of required type \"" + def.type +
                     "\" was not provided."};
      } else {
        resolved[def.name] = nullptr;
      }
    }
    Operation out;
    out.kind = chosen->kind;
    out.name = chosen->name;
    Resolver resolver(doc, std::move(resolved));
    resolver.fields(chosen->selection, out.fields, 0);
    return out;
  } catch (const SyntaxError& e) {
    return Error{e.what()};
  } catch (const ResolveError& e) {
    return Error{e.what()};
  }
}

}  // namespace klingq::sim::graphql
