#pragma once

namespace bt::storm {

/// `buildtrack storm ...`: argv[0] is "storm". Returns the exit status: 0 when every
/// check held, 1 when one did not (or the storm could not run), 2 on bad usage.
int command(int argc, char** argv);

} // namespace bt::storm
