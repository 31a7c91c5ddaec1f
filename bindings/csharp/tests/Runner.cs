// A small console runner for the NUnit 2.6 tests in this assembly (Debian's
// nunit-console works too, but this one needs nothing but nunit.framework.dll):
// finds [TestFixture] classes, runs their [Test] and [TestCase] methods with
// [TestFixtureSetUp]/[SetUp]/[TearDown]/[TestFixtureTearDown], prints one line
// per test and, last, exactly "N passed, N failed". Exit status 1 on any failure.
//
//   mono Gptq.Tests.exe [substring of test names to run ...]
using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Threading;
using NUnit.Framework;

namespace Gptq.Tests
{
    public static class Runner
    {
        private static readonly TimeSpan PerTestTimeout = TimeSpan.FromMinutes(5);

        public static int Main(string[] args)
        {
            int passed = 0, failed = 0, ignored = 0;
            var fixtures = typeof(Runner).Assembly.GetTypes()
                .Where(t => t.IsClass && !t.IsAbstract && t.IsDefined(typeof(TestFixtureAttribute), true))
                .OrderBy(t => t.FullName, StringComparer.Ordinal);
            foreach (Type type in fixtures)
            {
                var cases = new List<KeyValuePair<string, Action<object>>>();
                foreach (MethodInfo m in type.GetMethods(BindingFlags.Public | BindingFlags.Instance)
                                             .OrderBy(m => m.MetadataToken))
                {
                    if (m.IsDefined(typeof(IgnoreAttribute), true) || m.IsDefined(typeof(ExplicitAttribute), true))
                        continue;
                    var testCases = (TestCaseAttribute[])m.GetCustomAttributes(typeof(TestCaseAttribute), true);
                    if (testCases.Length > 0)
                    {
                        foreach (TestCaseAttribute tc in testCases)
                        {
                            object[] a = Convert(m, tc.Arguments);
                            MethodInfo mm = m;
                            cases.Add(new KeyValuePair<string, Action<object>>(
                                type.Name + "." + m.Name + "(" + string.Join(", ", tc.Arguments.Select(Show)) + ")",
                                o => mm.Invoke(o, a)));
                        }
                    }
                    else if (m.IsDefined(typeof(TestAttribute), true))
                    {
                        MethodInfo mm = m;
                        cases.Add(new KeyValuePair<string, Action<object>>(type.Name + "." + m.Name,
                                                                            o => mm.Invoke(o, null)));
                    }
                }
                if (args.Length > 0)
                    cases = cases.Where(c => args.Any(a => c.Key.Contains(a))).ToList();
                if (cases.Count == 0)
                    continue;

                object fixture;
                try
                {
                    fixture = Activator.CreateInstance(type);
                    InvokeAll(fixture, typeof(TestFixtureSetUpAttribute));
                }
                catch (Exception e)
                {
                    foreach (var c in cases)
                    {
                        failed++;
                        Console.WriteLine("FAIL " + c.Key + ": fixture setup: " + Describe(e));
                    }
                    continue;
                }
                foreach (var c in cases)
                {
                    Exception error = Run(() =>
                    {
                        InvokeAll(fixture, typeof(SetUpAttribute));
                        try
                        {
                            c.Value(fixture);
                        }
                        finally
                        {
                            InvokeAll(fixture, typeof(TearDownAttribute));
                        }
                    });
                    if (error == null || error is SuccessException)
                    {
                        passed++;
                        Console.WriteLine("PASS " + c.Key);
                    }
                    else if (error is IgnoreException || error is InconclusiveException)
                    {
                        ignored++;
                        Console.WriteLine("SKIP " + c.Key + ": " + error.Message);
                    }
                    else
                    {
                        failed++;
                        Console.WriteLine("FAIL " + c.Key + ": " + Describe(error));
                    }
                }
                Exception down = Run(() => InvokeAll(fixture, typeof(TestFixtureTearDownAttribute)));
                if (down != null)
                {
                    failed++;
                    Console.WriteLine("FAIL " + type.Name + ": fixture teardown: " + Describe(down));
                }
                var disposable = fixture as IDisposable;
                if (disposable != null)
                    disposable.Dispose();
            }
            if (ignored > 0)
                Console.WriteLine(ignored + " skipped");
            Console.WriteLine(passed + " passed, " + failed + " failed");
            Console.Out.Flush();
            // A test thread stuck past its timeout must not keep the process alive.
            Environment.Exit(failed == 0 ? 0 : 1);
            return failed == 0 ? 0 : 1;
        }

        // Runs body on its own thread with a timeout; returns what it threw.
        private static Exception Run(Action body)
        {
            Exception error = null;
            var t = new Thread(() =>
            {
                try
                {
                    body();
                }
                catch (Exception e)
                {
                    error = Unwrap(e);
                }
            }, 16 * 1024 * 1024);
            t.IsBackground = true;
            t.Start();
            if (!t.Join(PerTestTimeout))
                return new TimeoutException("timed out after " + PerTestTimeout.TotalSeconds + " s");
            return error;
        }

        private static void InvokeAll(object fixture, Type attribute)
        {
            foreach (MethodInfo m in fixture.GetType().GetMethods(BindingFlags.Public | BindingFlags.Instance))
                if (m.IsDefined(attribute, true))
                {
                    try
                    {
                        m.Invoke(fixture, null);
                    }
                    catch (TargetInvocationException e)
                    {
                        throw Unwrap(e);
                    }
                }
        }

        private static Exception Unwrap(Exception e)
        {
            while (e is TargetInvocationException && e.InnerException != null)
                e = e.InnerException;
            return e;
        }

        private static string Describe(Exception e)
        {
            if (e is AssertionException)
                return e.Message.Trim() + Location(e);
            // The frames below the test method are the runner's reflection.
            string trace = string.Join("\n", (e.StackTrace ?? "").Split('\n')
                .TakeWhile(l => !l.Contains("System.Reflection.") && !l.Contains("(wrapper managed-to-native) System.Reflection")));
            return e.GetType().FullName + ": " + e.Message + "\n" + trace;
        }

        private static string Location(Exception e)
        {
            string trace = e.StackTrace ?? "";
            var line = trace.Split('\n').FirstOrDefault(l => l.Contains("Gptq.Tests.") && !l.Contains("Gptq.Tests.Runner"));
            return line != null ? "\n    " + line.Trim() : "";
        }

        private static object[] Convert(MethodInfo m, object[] args)
        {
            ParameterInfo[] ps = m.GetParameters();
            if (ps.Length != args.Length)
                throw new ArgumentException(m.Name + ": " + args.Length + " test case arguments for " + ps.Length + " parameters");
            var r = new object[args.Length];
            for (int i = 0; i < args.Length; i++)
            {
                Type want = ps[i].ParameterType;
                object a = args[i];
                if (a == null || want.IsInstanceOfType(a))
                    r[i] = a;
                else if (want.IsEnum)
                    r[i] = Enum.ToObject(want, a);
                else
                    r[i] = System.Convert.ChangeType(a, want, System.Globalization.CultureInfo.InvariantCulture);
            }
            return r;
        }

        private static string Show(object a)
        {
            if (a == null)
                return "null";
            if (a is string)
                return "\"" + a + "\"";
            if (a is bool)
                return (bool)a ? "true" : "false";
            return System.Convert.ToString(a, System.Globalization.CultureInfo.InvariantCulture);
        }
    }
}
