// A small GraphQL executable-document parser: enough of the language for what clients
// of this API send (operations with variables and defaults, aliases, literal arguments
// of every kind, fragments and inline fragments, @skip/@include), resolving variables
// so the caller sees root fields with plain JSON arguments. It knows nothing about the
// schema: lib/sim/api.cpp decides which root fields exist. Pure: text in, tree or an
// error message out.
#pragma once

#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace klingq::sim::graphql {

struct Field {
  std::string alias;               // the response key: the alias, else the name
  std::string name;
  boost::json::object arguments;   // variables resolved, enum values as strings
  std::vector<Field> selection;    // fragments already expanded; empty for scalars
};

struct Operation {
  std::string kind;  // "query" | "mutation" | "subscription"
  std::string name;  // "" when anonymous
  std::vector<Field> fields;
};

struct Error {
  std::string message;
};

// Parses `document`, picks the operation (by operation_name when given, else the only
// one) and resolves its variables.
std::variant<Operation, Error> parse(std::string_view document, const boost::json::object& variables,
                                     std::string_view operation_name);

}  // namespace klingq::sim::graphql
