// Progress (with cancel) and log callbacks, and exceptions thrown inside them.
using System;
using System.Collections.Generic;
using NUnit.Framework;

namespace Gptq.Tests
{
    [TestFixture]
    public class CallbackTests
    {
        [Test]
        public void ProgressReportsEveryBlock()
        {
            var calls = new List<long[]>();
            var cfg = new Config
            {
                BlockSize = 32,
                Progress = (done, total) =>
                {
                    calls.Add(new[] { done, total });
                    return true;
                },
            };
            using (Context ctx = Layer.Calibrated(cfg))
            using (ctx.Quantize(Data.Weights(Layer.N, Layer.K, 61)))
            {
            }
            Assert.AreEqual(Layer.K / 32, calls.Count);
            for (int i = 0; i < calls.Count; i++)
            {
                Assert.AreEqual(32 * (i + 1), calls[i][0], "done");
                Assert.AreEqual(Layer.K, calls[i][1], "total");
            }
        }

        [Test]
        public void CancelReallyStopsAndLeavesTheContextUsable()
        {
            int calls = 0;
            bool cancel = true;
            var cfg = new Config
            {
                BlockSize = 16,
                Progress = (done, total) =>
                {
                    calls++;
                    return !cancel;
                },
            };
            float[] w = Data.Weights(Layer.N, Layer.K, 62);
            using (Context ctx = Layer.Calibrated(cfg))
            {
                var e = Assert.Throws<GptqException>(() => ctx.Quantize(w));
                Layer.AssertLibraryMessage(e, Status.ErrCancelled, "cancelled by the progress callback after 16 of " + Layer.K);
                Assert.IsNull(e.InnerException);
                Assert.AreEqual(1, calls, "no call after the cancel");

                cancel = false;
                calls = 0;
                using (QTensor q = ctx.Quantize(w))
                using (Context fresh = Layer.Calibrated(new Config { BlockSize = 16 }))
                using (QTensor r = fresh.Quantize(w))
                    CollectionAssert.AreEqual(r.Codes(), q.Codes(), "the cancelled call changed nothing");
                Assert.AreEqual(Layer.K / 16, calls);
            }
        }

        [Test]
        public void ExceptionInProgressCancelsAndIsTheInnerException()
        {
            int calls = 0;
            bool fail = true;
            var cfg = new Config
            {
                BlockSize = 32,
                Progress = (done, total) =>
                {
                    calls++;
                    if (fail && calls == 2)
                        throw new InvalidOperationException("boom in progress");
                    return true;
                },
            };
            using (Context ctx = Layer.Calibrated(cfg))
            {
                var e = Assert.Throws<GptqException>(() => ctx.Quantize(Data.Weights(Layer.N, Layer.K, 63)));
                Assert.AreEqual(Status.ErrCancelled, e.Status);
                Assert.IsInstanceOf<InvalidOperationException>(e.InnerException);
                Assert.AreEqual("boom in progress", e.InnerException.Message);
                Assert.AreEqual(2, calls, "stopped at the throwing call");

                fail = false;
                using (ctx.Quantize(Data.Weights(Layer.N, Layer.K, 63)))
                {
                }
            }
        }

        [Test]
        public void LogReceivesMessages()
        {
            var messages = new List<KeyValuePair<LogLevel, string>>();
            var cfg = new Config
            {
                Backend = Backend.Auto,
                LogLevel = LogLevel.Debug,
                Log = (level, message) => messages.Add(new KeyValuePair<LogLevel, string>(level, message)),
            };
            using (Context ctx = Layer.Calibrated(cfg))
            {
                Assert.IsTrue(messages.Exists(m => m.Key == LogLevel.Info && m.Value.Contains("backend")),
                              "the backend choice is logged: " + string.Join(" | ", messages));
                int before = messages.Count;
                using (ctx.Quantize(Data.Weights(Layer.N, Layer.K, 64)))
                {
                }
                Assert.Greater(messages.Count, before, "quantize logs at debug level");
                Assert.IsTrue(messages.TrueForAll(m => !string.IsNullOrEmpty(m.Value)));
            }
        }

        [Test]
        public void LogLevelFilters()
        {
            var messages = new List<string>();
            var cfg = new Config
            {
                Backend = Backend.Auto,
                LogLevel = LogLevel.Warn,
                Log = (level, message) => messages.Add(message),
            };
            using (Context ctx = Layer.Calibrated(cfg))
            using (ctx.Quantize(Data.Weights(Layer.N, Layer.K, 65)))
            {
            }
            CollectionAssert.IsEmpty(messages);
        }

        [Test]
        public void ExceptionInLogFailsTheCall()
        {
            var cfg = new Config
            {
                Backend = Backend.Auto,
                Log = (level, message) => { throw new ApplicationException("boom in log"); },
            };
            var e = Assert.Throws<GptqException>(() => new Context(Layer.N, Layer.K, cfg));
            Assert.AreEqual(Status.ErrCancelled, e.Status);
            Assert.IsInstanceOf<ApplicationException>(e.InnerException);

            // During quantize: the operation is cancelled at the next progress check.
            int progressCalls = 0;
            bool throwNow = false;
            cfg = new Config
            {
                BlockSize = 16,
                LogLevel = LogLevel.Debug,
                Progress = (d, t) => { progressCalls++; return true; },
                Log = (level, message) =>
                {
                    if (throwNow)
                        throw new ApplicationException("boom in log");
                },
            };
            using (Context ctx = Layer.Calibrated(cfg))
            {
                throwNow = true;
                e = Assert.Throws<GptqException>(() => ctx.Quantize(Data.Weights(Layer.N, Layer.K, 66)));
                Assert.AreEqual(Status.ErrCancelled, e.Status);
                Assert.IsInstanceOf<ApplicationException>(e.InnerException);
                throwNow = false;
                using (ctx.Quantize(Data.Weights(Layer.N, Layer.K, 66)))
                {
                }
            }
        }

        [Test]
        public void CallbacksSurviveGarbageCollection()
        {
            int calls = 0;
            var cfg = new Config
            {
                BlockSize = 16,
                Progress = (done, total) =>
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    calls++;
                    return true;
                },
            };
            Context ctx = Layer.Calibrated(cfg);
            cfg = null;
            GC.Collect();
            GC.WaitForPendingFinalizers();
            using (ctx)
            using (ctx.Quantize(Data.Weights(Layer.N, Layer.K, 67)))
            {
            }
            Assert.AreEqual(Layer.K / 16, calls);
        }
    }
}
