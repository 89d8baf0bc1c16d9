#pragma once

#include <cstdint>
#include <string>

namespace bt::support {

/// The writing end of a server-push connection (a WebSocket subscriber), bounded:
/// whoever offers never waits. A frame that finds the queue full opens a gap; the
/// gap counts every frame offered until the queue has drained, and then one note
/// (made by the connection's owner from the count and the position before the gap)
/// is written in its place. Frames are taken again after the note.
class push_channel {
public:
  virtual ~push_channel() = default;
  /// Queues a text frame for the message at position `position`; false when it was
  /// not queued (a gap is open, or the connection is gone). Any thread, never blocks.
  virtual bool offer(std::string frame, const std::string& position) = 0;
  /// Closes the connection once what is queued was written. Any thread.
  virtual void close() = 0;
};

} // namespace bt::support
