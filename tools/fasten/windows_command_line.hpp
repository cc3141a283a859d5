// Windows command lines: quoting one argument so that the C runtime's argv
// parsing (and CommandLineToArgvW) gives it back unchanged. Used by fasten to
// start commands and by the tests to start helper processes.
#pragma once

#include <cstddef>
#include <string>

namespace fasten {

// Quotes one argument so that the C runtime's argv parsing (and
// CommandLineToArgvW) gives it back unchanged.
inline std::wstring quote_argument(const std::wstring& arg) {
  if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) return arg;
  std::wstring quoted = L"\"";
  for (auto it = arg.begin();; ++it) {
    std::size_t backslashes = 0;
    while (it != arg.end() && *it == L'\\') {
      ++it;
      ++backslashes;
    }
    if (it == arg.end()) {
      quoted.append(backslashes * 2, L'\\');  // the closing quote must stay a quote
      break;
    }
    if (*it == L'"') {
      quoted.append(backslashes * 2 + 1, L'\\');
    } else {
      quoted.append(backslashes, L'\\');
    }
    quoted.push_back(*it);
  }
  quoted.push_back(L'"');
  return quoted;
}

}  // namespace fasten
