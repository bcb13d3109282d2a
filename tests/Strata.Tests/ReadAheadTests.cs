using Strata.Data;
using Xunit;

namespace Strata.Tests;

/// <summary>The data preparation's reading threads: files read several at once come in the order one thread reads
/// them, with the characters read ahead bounded; a file's error is thrown in its place; a consumer that stops stops
/// them.</summary>
public class ReadAheadTests
{
    /// <summary>Files whose reading is watched: how many are being read at once, how far ahead of the consumer a file
    /// was started, how many readings are still open.</summary>
    private sealed class WatchedFiles(int count, int seed)
    {
        private readonly int[] _documents = Enumerable.Range(0, count).Select(i => 1 + (i * 7 + seed) % 13).ToArray();
        private readonly int[] _delays = Enumerable.Range(0, count).Select(i => (i * 5 + seed) % 4).ToArray();
        private int _open, _mostOpen;
        public volatile int Consuming;
        public int FurthestAhead, ThrowIn = -1;

        public int Open => Volatile.Read(ref _open);
        public int MostOpen => Volatile.Read(ref _mostOpen);

        public IEnumerable<Document> Expected() =>
            Enumerable.Range(0, count).SelectMany(i => Enumerable.Range(0, _documents[i]).Select(j => Doc(i, j)));

        private static Document Doc(int file, int index) =>
            new(file, $"f{file}", index, new string((char)('a' + index % 26), index % 5 == 4 ? 700_000 : 10 + index), false);

        public IEnumerable<Document> Read(int file)
        {
            lock (this) FurthestAhead = Math.Max(FurthestAhead, file - Consuming);
            int open = Interlocked.Increment(ref _open);
            lock (this) _mostOpen = Math.Max(_mostOpen, open);
            try
            {
                for (int j = 0; j < _documents[file]; j++)
                {
                    if (file == ThrowIn && j == 1) throw new InvalidDataException($"f{file} is damaged");
                    Thread.Sleep(_delays[file]);
                    yield return Doc(file, j);
                }
            }
            finally { Interlocked.Decrement(ref _open); }
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void Files_read_several_at_once_come_in_the_order_one_thread_reads_them(int threads)
    {
        var files = new WatchedFiles(60, threads);
        var got = new List<Document>();
        foreach (var d in ReadAhead.InOrder(60, files.Read, threads))
        {
            files.Consuming = d.Input;
            got.Add(d);
        }
        Assert.Equal(files.Expected().Select(d => (d.Input, d.Index, d.Text)), got.Select(d => (d.Input, d.Index, d.Text)));
        Assert.True(files.MostOpen > 1, "the files were read one at a time");
        Assert.True(files.MostOpen <= threads);
        Assert.True(files.FurthestAhead >= 2, "no file was read more than one ahead of the one handed on");
        Assert.Equal(0, files.Open);
    }

    [Fact]
    public void Large_files_read_ahead_of_the_one_handed_on_stop_at_the_characters_allowed()
    {
        const int Files = 12, Threads = 3, Doc = 300_000, Docs = 40;                    // 12 Mi characters a file
        const long Ahead = 2L << 20;
        var read = new long[Files];
        var handedOn = new long[Files];
        long mostAhead = 0;
        int consuming = 0;
        // files two or more past the one whose documents the loop below has seen: the one handed on may be the next
        void Count()
        {
            long ahead = 0;
            for (int f = consuming + 2; f < Files; f++) ahead += read[f] - handedOn[f];
            mostAhead = Math.Max(mostAhead, ahead);
        }
        IEnumerable<Document> Read(int file)
        {
            for (int j = 0; j < Docs; j++)
            {
                lock (read) { read[file] += Doc; Count(); }
                yield return new Document(file, $"f{file}", j, new string('x', Doc), false);
            }
        }
        long total = 0;
        foreach (var d in ReadAhead.InOrder(Files, Read, Threads, Ahead))
        {
            lock (read)
            {
                consuming = d.Input;
                handedOn[d.Input] += d.Text.Length;
            }
            total += d.Text.Length;
        }
        Assert.Equal((long)Files * Docs * Doc, total);
        // the allowance, and at most a chunk in the making on each thread and one just queued as the head moved on
        long bound = (Threads - 1) * Ahead + Threads * ((1 << 20) + Doc) + (1 << 20) + Doc;
        Assert.InRange(mostAhead, Doc, bound);
    }

    [Fact]
    public void One_thread_reads_the_files_in_turn_on_the_callers_thread()
    {
        var files = new WatchedFiles(10, 1);
        var readers = new HashSet<int>();
        var got = ReadAhead.InOrder(10, i => { readers.Add(Environment.CurrentManagedThreadId); return files.Read(i); }, 1).ToList();
        Assert.Equal(files.Expected().Select(d => (d.Input, d.Index)), got.Select(d => (d.Input, d.Index)));
        Assert.Equal([Environment.CurrentManagedThreadId], readers);
    }

    [Fact]
    public void A_files_error_comes_after_the_documents_before_it_and_stops_every_reading()
    {
        var files = new WatchedFiles(40, 3) { ThrowIn = 9 };
        var got = new List<Document>();
        var e = Assert.Throws<InvalidDataException>(() =>
        {
            foreach (var d in ReadAhead.InOrder(40, files.Read, 3))
            {
                files.Consuming = d.Input;
                got.Add(d);
            }
        });
        Assert.Equal("f9 is damaged", e.Message);
        Assert.Equal(files.Expected().TakeWhile(d => d.Input < 9 || d.Index < 1).Select(d => (d.Input, d.Index)), got.Select(d => (d.Input, d.Index)));
        Assert.Equal(0, files.Open);                                                     // every reading closed before the error came out
    }

    [Fact]
    public void A_consumer_that_stops_early_closes_every_reading()
    {
        var files = new WatchedFiles(40, 5);
        var first = ReadAhead.InOrder(40, files.Read, 3).Take(5).ToList();
        Assert.Equal(files.Expected().Take(5).Select(d => (d.Input, d.Index)), first.Select(d => (d.Input, d.Index)));
        Assert.Equal(0, files.Open);
    }
}
